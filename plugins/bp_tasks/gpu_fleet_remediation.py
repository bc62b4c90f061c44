"""Task bodies of ``gpu_fleet_remediation``: one production fleet's safe fixes, asked
again of the fleet itself once the approvals are in (:mod:`bp_tasks.fleet_fixes`)."""

from __future__ import annotations

import logging

from airflow.sdk import task

from bp_tasks.common import report_outcome, validated
from bp_tasks.fleet_fixes import apply_fixes, inspect
from include.errors import InvalidRequest
from include.fleets import guardrails as g
from include.fleets import preflight
from include.fleets.guardrail_report import render_table
from include.money import usd

log = logging.getLogger("bp.gpu_fleet_remediation")


def _one_fleet(params: dict) -> preflight.Scope:
    scope = preflight.Scope.of(params)
    if scope.fleet_stage != "production" or not scope.fleet_slug:
        raise InvalidRequest("gpu_fleet_remediation fixes one production fleet: fleet_stage production and a slug")
    return scope


@task(retries=0, multiple_outputs=False)
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> dict:
    """Domain checks on the params, before any AWS call."""
    scope = validated(_one_fleet, params, "Nothing was checked or changed.", dag_run=dag_run, dag=dag)
    if params.get("inspection_run_id"):
        log.info("Asked by gpu_fleet_guardrails run %s", params["inspection_run_id"])
    return scope.as_dict()


def _fixable(inspected: dict) -> list[g.Finding]:
    return [f for f in map(g.Finding.from_dict, inspected["findings"]) if f.remediation and f.stage == "production"]


@task(multiple_outputs=False)
def inspect_fleet(request: dict, params: dict | None = None, ti=None) -> dict:
    """The fleet now: what is wrong with it, and which of that has a safe fix."""
    inspected = inspect(preflight.Scope.of(request), params["aws_conn_id"], ti)
    report_outcome("Findings:", *render_table([g.Finding.from_dict(f) for f in inspected["findings"]]).splitlines())
    return inspected


@task.short_circuit
def remediation_question(inspected: dict) -> str:
    """What the approvers read; empty (the run ends here, asking nobody) when nothing has
    a safe fix any more."""
    fixable = _fixable(inspected)
    if not fixable:
        log.info("Nothing to fix in %s any more: nobody is asked", ", ".join(inspected["fleets"]) or "the fleet")
        return ""
    lines = [f"- **{f.scope}** {f.check}: {f.summary} → {f.remediation.replace('_', ' ')}" for f in fixable]
    return "The guardrails would apply these safe fixes in production:\n\n" + "\n".join(lines)


@task(multiple_outputs=False)
def remediate(request: dict, params: dict | None = None, ti=None, dag_run=None) -> dict:
    """Inspect the fleet again and apply the fixes still called for: the approval may have
    waited hours, and a fleet busy again is not scaled to zero."""
    fixable = _fixable(inspect(preflight.Scope.of(request), params["aws_conn_id"], ti))
    applied = apply_fixes(fixable, "production", params["aws_conn_id"], ti, dag_run)
    saved = g.saved_per_hour(fixable)
    report_outcome(
        *(f"fixed {a['fleet']}: {a['result']} (audit {a['audit']})" for a in applied),
        f"Applied {len(applied)} fix(es) in production: {usd(saved)}/hour of GPU spend stopped"
        + ("" if applied else " (nothing was left to fix when the approvals came)"),
    )
    return {"applied": applied, "saved_per_hour": str(saved)}
