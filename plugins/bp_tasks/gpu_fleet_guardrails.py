"""Task bodies of ``gpu_fleet_guardrails``: inspect every fleet (include.fleets.inspection),
detect stack drift, report, fix staging at once and hand each production fleet's fixes to
a ``gpu_fleet_remediation`` run of its own (:mod:`bp_tasks.fleet_fixes` holds both)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from airflow.sdk import task

from bp_tasks.common import airflow_api, report_outcome, validated
from bp_tasks.fleet_fixes import apply_fixes, fleet_of, inspect
from include.fleets import guardrails as g
from include.fleets import preflight
from include.fleets.guardrail_report import alerts, render_table
from include.money import usd

log = logging.getLogger("bp.gpu_fleet_guardrails")
#: The DAG that fixes one production fleet after its approvals.
REMEDIATION_DAG = "gpu_fleet_remediation"


@task(retries=0, multiple_outputs=False)
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> dict:
    """Domain checks on the params, before any AWS call."""
    scope = validated(
        preflight.Scope.of,
        params,
        "Nothing was checked or changed.",
        dag_run=dag_run,
        dag=dag,
    )
    log.info(
        "Checking stages %s, fleet %s; remediate: %s",
        ", ".join(scope.stages),
        scope.fleet_slug or "(all)",
        "yes (production in gpu_fleet_remediation, after its approvals)" if params["remediate"] else "no",
    )
    return {**scope.as_dict(), "remediate": bool(params["remediate"])}


@task(multiple_outputs=False)
def inspect_fleets(request: dict, params: dict | None = None, ti=None) -> dict:
    """Every fleet of the scope (:func:`bp_tasks.fleet_fixes.inspect`)."""
    return inspect(preflight.Scope.of(request), params["aws_conn_id"], ti)


@task(multiple_outputs=False)
def start_drift_detection(inspected: dict, params: dict | None = None) -> dict[str, str]:
    """DetectStackDrift on every fleet stack that exists: fleet -> detection id."""
    from bp_aws.hooks.cloudformation import ChangeSetHook

    hook = ChangeSetHook(aws_conn_id=params["aws_conn_id"])
    started = {}
    for name in inspected["fleets"]:
        stack = fleet_of(name).fleet_stack
        if hook.describe_stack(stack) is not None:
            started[name] = hook.start_drift_detection(stack)
    log.info("Drift detection started on %d stack(s)", len(started))
    return started


@task(multiple_outputs=False)
def report(inspected: dict, drift: dict[str, str], params: dict | None = None, dag_run=None) -> dict:
    """One table in the log and one alert per fleet with findings; what may be remediated."""
    from bp_aws.hooks.cloudformation import ChangeSetHook
    from bp_aws.notifiers.ops_alert import run_link, send_alert

    findings = [g.Finding.from_dict(f) for f in inspected["findings"]]
    hook = ChangeSetHook(aws_conn_id=params["aws_conn_id"])
    for name, status in sorted(drift.items()):
        if status == "DRIFTED":
            fleet = fleet_of(name)
            findings += g.stack_drift(fleet, hook.drifted_resources(fleet.fleet_stack))
    report_outcome("Guardrail findings:", *render_table(findings).splitlines())
    for stage, alert in alerts(findings, run_link({"dag_run": dag_run})):
        send_alert(alert, stage=stage, aws_conn_id=params["aws_conn_id"])
    return {"findings": [f.as_dict() for f in findings]}


@task.branch
def remediation_path(request: dict, reported: dict) -> list[str]:
    """Staging remediates at once; production asks gpu_fleet_remediation, one run per
    fleet; nothing without ``remediate`` or without a finding that has a safe fix."""
    stages = {g.Finding.from_dict(f).stage for f in reported["findings"] if f["remediation"]}
    if not request["remediate"] or not stages:
        log.info("Nothing to remediate%s", "" if request["remediate"] else " (remediate is off)")
        return []
    return [
        path
        for stage, path in (("staging", "remediate_staging"), ("production", "request_production_fixes"))
        if stage in stages
    ]


@task(multiple_outputs=False)
def remediate_staging(reported: dict, params: dict | None = None, ti=None, dag_run=None) -> dict:
    """Staging's safe fixes, at once (:func:`bp_tasks.fleet_fixes.apply_fixes`)."""
    fixable = [f for f in map(g.Finding.from_dict, reported["findings"]) if f.remediation and f.stage == "staging"]
    applied = apply_fixes(fixable, "staging", params["aws_conn_id"], ti, dag_run)
    saved = g.saved_per_hour(fixable)
    report_outcome(
        *(f"fixed {a['fleet']}: {a['result']} (audit {a['audit']})" for a in applied),
        f"Applied {len(applied)} fix(es) in staging: {usd(saved)}/hour of GPU spend stopped",
    )
    return {"applied": applied, "saved_per_hour": str(saved)}


@task(multiple_outputs=False)
def request_production_fixes(reported: dict, params: dict | None = None, dag_run=None) -> list[str]:
    """One gpu_fleet_remediation run per production fleet with a safe fix, unless one is
    already waiting for that fleet: this run ends here, so the next inspection (and
    staging's fixes) never waits on a production approval."""
    fixable = (f["scope"] for f in reported["findings"] if f["remediation"])
    fleets = sorted({scope for scope in fixable if scope.startswith("production/")})
    api = airflow_api()
    waiting = {run.run_id for run in api.list_runs(REMEDIATION_DAG, states=("queued", "running"))}
    said, started = [], []
    for name in fleets:
        fleet = fleet_of(name)
        prefix = fleet.remediation_run_prefix
        pending = sorted(run_id for run_id in waiting if run_id.startswith(prefix))
        if pending:
            said.append(f"{name}: remediation {pending[0]} is still waiting for its approvals: not asked again")
            continue
        run_id = f"{prefix}{datetime.now(UTC):%Y%m%dT%H%M%S}"
        conf = {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug, "aws_conn_id": params["aws_conn_id"]}
        api.trigger(REMEDIATION_DAG, conf | {"inspection_run_id": dag_run.run_id}, run_id=run_id)
        started.append(run_id)
        said.append(f"{name}: its approvals are asked in {api.run_url(REMEDIATION_DAG, run_id)}")
    report_outcome(f"Production fixes: {len(started)} remediation run(s) started", *said)
    return started
