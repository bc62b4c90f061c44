"""Task bodies of ``gpu_fleet_guardrails``: inspect every fleet (include.fleets.inspection),
detect stack drift, report, and apply the safe remediations with an audit record each."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

from airflow.sdk import Variable, task

from bp_tasks.common import report_outcome, validated
from include.fleets import guardrails as g
from include.fleets import preflight
from include.fleets.guardrail_report import alerts, render_table
from include.money import usd
from include.naming.fleet import Fleet

log = logging.getLogger("bp.gpu_fleet_guardrails")

#: botocore's adaptive retries: CloudWatch throttling is retried with backoff, not failed
RETRIES = {"mode": "adaptive", "max_attempts": 10}


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
        "yes (production after an approval)" if params["remediate"] else "no",
    )
    return {**scope.as_dict(), "remediate": bool(params["remediate"])}


def _client(aws_conn_id: str):
    from botocore.config import Config

    from bp_aws.hooks.clients import aws_client_factory

    return aws_client_factory(aws_conn_id, config=Config(retries=RETRIES))


def daily_budgets() -> dict[str, Decimal]:
    """Variable ``gpu_daily_budgets``: stage -> USD per day (no entry: no spend check)."""
    return {stage: Decimal(str(usd)) for stage, usd in json.loads(Variable.get("gpu_daily_budgets", "{}")).items()}


@task(multiple_outputs=False)
def inspect_fleets(request: dict, params: dict | None = None, ti=None) -> dict:
    """Every fleet of the scope: leaks, stuck protection, idle capacity, locks, pointers,
    image and config drift; then the stages' orphans and spend rate."""
    from bp_tasks.economics_settings import gpu_hourly_prices
    from bp_tasks.fleet_lock import run_state
    from include.fleets import inspection

    scope = preflight.Scope.of(request)
    client = _client(params["aws_conn_id"])
    fleets = preflight.discover_fleets(client("ssm"), scope)
    findings = inspection.inspect_fleets(
        client,
        fleets,
        scope.stages,
        now=datetime.now(UTC),
        prices=gpu_hourly_prices(),
        run_state=run_state(ti),
        daily_budgets=daily_budgets(),
    )
    log.info("Inspected %d fleet(s): %s", len(fleets), ", ".join(map(str, fleets)) or "none found")
    return {"fleets": [str(f) for f in fleets], "findings": [f.as_dict() for f in findings]}


def _fleet(name: str) -> Fleet:
    stage, _, slug = name.partition("/")
    return Fleet(stage, slug)


@task(multiple_outputs=False)
def start_drift_detection(inspected: dict, params: dict | None = None) -> dict[str, str]:
    """DetectStackDrift on every fleet stack that exists: fleet -> detection id."""
    from bp_aws.hooks.cloudformation import ChangeSetHook

    hook = ChangeSetHook(aws_conn_id=params["aws_conn_id"])
    started = {}
    for name in inspected["fleets"]:
        stack = _fleet(name).fleet_stack
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
            fleet = _fleet(name)
            findings += g.stack_drift(fleet, hook.drifted_resources(fleet.fleet_stack))
    report_outcome("Guardrail findings:", *render_table(findings).splitlines())
    for stage, alert in alerts(findings, run_link({"dag_run": dag_run})):
        send_alert(alert, stage=stage, aws_conn_id=params["aws_conn_id"])
    return {"findings": [f.as_dict() for f in findings]}


@task.branch
def remediation_path(request: dict, reported: dict) -> list[str]:
    """Staging remediates at once; production after an approval; nothing without
    ``remediate`` or without a finding that has a safe fix."""
    stages = {g.Finding.from_dict(f).stage for f in reported["findings"] if f["remediation"]}
    if not request["remediate"] or not stages:
        log.info("Nothing to remediate%s", "" if request["remediate"] else " (remediate is off)")
        return []
    return [
        path
        for stage, path in (("staging", "remediate_staging"), ("production", "approve_remediation"))
        if stage in stages
    ]


@task
def remediation_question(reported: dict) -> str:
    """What the production approver reads."""
    lines = [
        f"- **{f['scope']}** {f['check']}: {f['summary']} → {f['remediation'].replace('_', ' ')}"
        for f in reported["findings"]
        if f["remediation"] and f["scope"].startswith("production/")
    ]
    return "The guardrails would apply these safe fixes in production:\n\n" + "\n".join(lines)


@task(multiple_outputs=False)
def remediate(reported: dict, stage: str, params: dict | None = None, ti=None, dag_run=None) -> dict:
    """Apply the stage's safe fixes, each once per fleet, each with an immutable audit
    record: scale a leaking fleet to zero (protection cleared first), terminate a smoke-test
    instance its ended build run left behind, and release a lock
    whose run has ended. Idempotent: a fleet already at zero, or a lock already gone, is
    said and left as it is."""
    from bp_aws.hooks.autoscaling import AutoScalingHook
    from bp_tasks.audit import write_record
    from bp_tasks.fleet_lock import SsmLockStore, run_state
    from include.fleets import lock as fleet_lock

    conn = params["aws_conn_id"]
    fixable = [
        finding
        for finding in (g.Finding.from_dict(f) for f in reported["findings"])
        if finding.remediation and finding.stage == stage
    ]
    todo: dict[tuple[str, str], list[g.Finding]] = {}
    for finding in fixable:  # one fix per fleet, whichever findings call for it
        todo.setdefault((finding.scope, finding.remediation), []).append(finding)
    autoscaling, applied = AutoScalingHook(aws_conn_id=conn), []
    for (scope, remediation), findings in sorted(todo.items()):
        fleet = _fleet(scope)
        if remediation == "scale_to_zero":
            cleared = autoscaling.clear_scale_in_protection(fleet.auto_scaling_group)
            autoscaling.set_desired_capacity(fleet.auto_scaling_group, 0)
            said = f"set {fleet.auto_scaling_group} to 0" + (
                f", protection cleared on {', '.join(cleared)}" if cleared else ""
            )
        elif remediation == "terminate_smoke_instance":
            from bp_aws.hooks.ec2_instances import Ec2InstanceHook

            leftovers = sorted(str(finding.details["instance_id"]) for finding in findings)
            said = f"terminated {', '.join(Ec2InstanceHook(aws_conn_id=conn).terminate(leftovers))}"
        else:
            me = fleet_lock.Holder.new(ti.dag_id, ti.run_id, "stale lock remediation")
            said = fleet_lock.release_stale(SsmLockStore(conn), fleet.lock, me, run_state(ti))
        record = {
            "at": datetime.now(UTC).isoformat(),
            "dag_id": dag_run.dag_id,
            "run_id": dag_run.run_id,
            "fleet": scope,
            "remediation": remediation,
            "findings": [finding.as_dict() for finding in findings],
            "result": said,
        }
        uri = write_record(fleet.remediation_audit_key(dag_run.run_id, remediation), record, conn, post=False)
        applied.append({"fleet": scope, "remediation": remediation, "result": said, "audit": uri})
    saved = g.saved_per_hour(fixable)
    report_outcome(
        *(f"fixed {a['fleet']}: {a['result']} (audit {a['audit']})" for a in applied),
        f"Applied {len(applied)} fix(es) in {stage}: {usd(saved)}/hour of GPU spend stopped",
    )
    return {"applied": applied, "saved_per_hour": str(saved)}
