"""What the guardrails' inspection and the production remediation share: a fleet's
inspection and the safe fixes, each applied once per fleet with an immutable audit record.

``gpu_fleet_guardrails`` inspects every fleet and fixes staging at once;
``gpu_fleet_remediation`` fixes one production fleet after its approvals, inspecting it
again first, so that only what is still wrong when the approval comes is fixed."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from decimal import Decimal

from airflow.sdk import Variable

from include.fleets import guardrails as g
from include.naming.fleet import Fleet

log = logging.getLogger("bp.fleet_fixes")

#: botocore's adaptive retries: CloudWatch throttling is retried with backoff, not failed
RETRIES = {"mode": "adaptive", "max_attempts": 10}


def client_factory(aws_conn_id: str):
    from botocore.config import Config

    from bp_aws.hooks.clients import aws_client_factory

    return aws_client_factory(aws_conn_id, config=Config(retries=RETRIES))


def daily_budgets() -> dict[str, Decimal]:
    """Variable ``gpu_daily_budgets``: stage -> USD per day (no entry: no spend check)."""
    return {stage: Decimal(str(usd)) for stage, usd in json.loads(Variable.get("gpu_daily_budgets", "{}")).items()}


def fleet_of(name: str) -> Fleet:
    stage, _, slug = name.partition("/")
    return Fleet(stage, slug)


def inspect(scope, aws_conn_id: str, ti) -> dict:
    """Every fleet of ``scope`` (a :class:`include.fleets.preflight.Scope`): leaks, stuck
    protection, idle capacity, locks, pointers, image and config drift; then the stages'
    orphans and spend rate."""
    from bp_tasks.economics_settings import gpu_hourly_prices
    from bp_tasks.fleet_lock import run_state
    from include.fleets import inspection, preflight

    client = client_factory(aws_conn_id)
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


def apply_fixes(findings: list[g.Finding], stage: str, aws_conn_id: str, ti, dag_run) -> list[dict]:
    """Apply the stage's safe fixes, each once per fleet, each with an immutable audit
    record: scale a leaking fleet to zero (protection cleared first), terminate a smoke-test
    instance its ended build run left behind, and release a lock whose run has ended.
    Idempotent: a fleet already at zero, or a lock already gone, is said and left as it is."""
    from bp_aws.hooks.autoscaling import AutoScalingHook
    from bp_tasks.audit import write_record
    from bp_tasks.fleet_lock import SsmLockStore, run_state
    from include.fleets import lock as fleet_lock

    todo: dict[tuple[str, str], list[g.Finding]] = {}
    for finding in (f for f in findings if f.remediation and f.stage == stage):  # one fix per fleet
        todo.setdefault((finding.scope, finding.remediation), []).append(finding)
    autoscaling, applied = AutoScalingHook(aws_conn_id=aws_conn_id), []
    for (scope, remediation), found in sorted(todo.items()):
        fleet = fleet_of(scope)
        if remediation == "scale_to_zero":
            cleared = autoscaling.clear_scale_in_protection(fleet.auto_scaling_group)
            autoscaling.set_desired_capacity(fleet.auto_scaling_group, 0)
            said = f"set {fleet.auto_scaling_group} to 0" + (
                f", protection cleared on {', '.join(cleared)}" if cleared else ""
            )
        elif remediation == "terminate_smoke_instance":
            from bp_aws.hooks.ec2_instances import Ec2InstanceHook

            leftovers = sorted(str(finding.details["instance_id"]) for finding in found)
            said = f"terminated {', '.join(Ec2InstanceHook(aws_conn_id=aws_conn_id).terminate(leftovers))}"
        else:
            me = fleet_lock.Holder.new(ti.dag_id, ti.run_id, "stale lock remediation")
            said = fleet_lock.release_stale(SsmLockStore(aws_conn_id), fleet.lock, me, run_state(ti))
        record = {
            "at": datetime.now(UTC).isoformat(),
            "dag_id": dag_run.dag_id,
            "run_id": dag_run.run_id,
            "fleet": scope,
            "remediation": remediation,
            "findings": [finding.as_dict() for finding in found],
            "result": said,
        }
        uri = write_record(fleet.remediation_audit_key(dag_run.run_id, remediation), record, aws_conn_id, post=False)
        applied.append({"fleet": scope, "remediation": remediation, "result": said, "audit": uri})
    return applied
