"""Task bodies of ``gpu_bundle_rollout``: AWS calls through the project's hooks,
decisions in :mod:`include.rollouts`."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks import fleet_lock, rollout_verdict
from bp_tasks.common import (
    FAILED_STATES,
    RequestRefused,
    check_bundle_in_bucket,
    connection_problem,
    task_states,
    unknown_keys,
    validated,
)
from include.errors import InvalidRequest
from include.naming.fleet import Fleet
from include.rollouts import pointers
from include.rollouts.rollout import (
    RolloutRequest,
    bake_run_id,
    dev_node_problem,
    failure_summary,
    node_report_problems,
    refresh_preferences,
)

log = logging.getLogger("bp.gpu_bundle_rollout")

#: Warmup for a fleet without a desired_config (seed 004's instance refresh example).
DEFAULT_WARMUP_SECONDS = 300
UNCHANGED = "The pointer was not moved; nothing changed."


def _rollout(request: dict) -> RolloutRequest:
    return RolloutRequest.from_params(request)


def _ssm(params: dict):
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    return SsmParameterHook(aws_conn_id=params["aws_conn_id"])


def _autoscaling(params: dict):
    from bp_aws.hooks.autoscaling import AutoScalingHook

    return AutoScalingHook(aws_conn_id=params["aws_conn_id"])


def _run_command(params: dict):
    from bp_aws.hooks.run_command import RunCommandHook

    return RunCommandHook(aws_conn_id=params["aws_conn_id"])


def _in_service(group: dict[str, Any]) -> list[str]:
    return sorted(i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService")


@task
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> dict:
    """Domain checks on the params, before any AWS call."""
    request = validated(RolloutRequest.from_params, params, "Nothing was changed.", dag_run=dag_run, dag=dag)
    log.info("Rollout request for %s: %s", request.fleet, request.as_dict())
    return request.as_dict()


@task
def check_bundle(request: dict, params: dict | None = None) -> str:
    """The manifest is valid and every asset is in the bucket at its size, and a dev_node
    target is a running dev node of the fleet's stage, before anything changes."""
    bucket = _ssm(params).require(request["models_bucket_parameter"])["Value"]
    bundle = check_bundle_in_bucket(params["aws_conn_id"], bucket, request["bundle_id"], f"Can't roll out. {UNCHANGED}")
    message = f"bundle {bundle.bundle_id} ({bundle.name}): {len(bundle.assets)} asset(s), all present at their size"
    rollout = _rollout(request)
    if rollout.strategy == "dev_node":
        from bp_aws.hooks.ec2_instances import Ec2InstanceHook
        from bp_tasks.gpu_dev_node import registered_nodes

        found = Ec2InstanceHook(aws_conn_id=params["aws_conn_id"]).describe_instance(rollout.instance_id)
        registered = {r.instance_id: node for node, r in registered_nodes(rollout.fleet.stage, params["aws_conn_id"])}
        problem = dev_node_problem(rollout.instance_id, found, rollout.fleet.stage, registered)
        if problem:
            raise AirflowFailException(f"Can't install on a dev node: {problem}. {UNCHANGED}")
        message += f"; {rollout.instance_id} is a running dev node of {rollout.fleet.stage}"
    log.info(message)
    return message


@task
def acquire_lock(request: dict, params: dict | None = None, ti=None) -> str:
    """The fleet's change lock (include.fleets.lock): one change per fleet at a time,
    whichever DAG makes it. A bake_and_refresh lets its AMI bake act under it."""
    from include.amis.build import DAG_ID as AMI_DAG

    rollout = _rollout(request)
    delegate = (AMI_DAG, bake_run_id(ti.run_id)) if rollout.strategy == "bake_and_refresh" else None
    purpose = f"rollout of bundle {rollout.bundle_id} ({rollout.strategy})"
    return fleet_lock.take(request["lock"], purpose, aws_conn_id=params["aws_conn_id"], ti=ti, delegate=delegate)


@task
def read_pointer(request: dict, params: dict | None = None) -> dict:
    """The fleet's current bundle (kept for the rollback) and its warmup."""
    from include.fleets import config as fleet_config

    ssm = _ssm(params)
    pointer = ssm.get(request["active_bundle"])
    config = ssm.get(request["desired_config"])
    warmup = DEFAULT_WARMUP_SECONDS
    if config is not None:
        try:
            warmup = fleet_config.parse_desired_config(config["Value"], source=config["Name"]).warmup_seconds
        except fleet_config.InvalidFleetConfig as error:
            log.warning("%s; using a warmup of %s s", error, warmup)
    current = {
        "value": pointer["Value"] if pointer else None,
        "version": pointer["Version"] if pointer else 0,
        "warmup_seconds": warmup,
    }
    log.info("%s holds %s (version %s)", request["active_bundle"], current["value"], current["version"])
    if request.get("rollback_of"):  # checked again under the lock: the pointer may have moved since the plan
        from bp_tasks.gpu_bundle_rollback import rollback_refusal, rollout_record

        fleet, undone = Fleet.of(request), request["rollback_of"]
        record = rollout_record(fleet, undone, params["aws_conn_id"])
        problem = rollback_refusal(
            fleet, undone, record, current["value"], params["aws_conn_id"], request["pointer_value"]
        )
        if problem:
            raise AirflowFailException(f"Can't roll back rollout {request['rollback_of']}: {problem}. {UNCHANGED}")
    return current


@task.branch
def strategy_path(request: dict) -> list[str]:
    if request["strategy"] == "pointer_only":
        log.info("pointer_only: nodes install %s at their next boot", request["pointer_value"])
        return []
    return {"dev_node": ["apply_on_dev_node"], "refresh": ["fleet_has_instances"], "bake_and_refresh": ["bake_ami"]}[
        request["strategy"]
    ]


@task
def check_dev_node(request: dict, command_id: str, params: dict | None = None, run_id: str | None = None) -> str:
    """Keep the installer's output in the logs bucket, then ask the node what it runs."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.naming import platform

    rollout = _rollout(request)
    instance = rollout.instance_id
    invocation = _run_command(params).invocations(command_id, [instance])[instance]
    s3 = OwnBucketsS3Hook(aws_conn_id=params["aws_conn_id"])
    bucket = platform.logs_bucket(s3.account_id)
    key = rollout.fleet.asset_sync_key(run_id, instance)
    output = {
        "command_id": command_id,
        "instance_id": instance,
        "status": invocation.get("Status"),
        "stdout": invocation.get("StandardOutputContent", ""),
        "stderr": invocation.get("StandardErrorContent", ""),
    }
    s3.load_string(json.dumps(output, indent=2), key, bucket, replace=True)
    log.info(
        "Installer output on %s (%s) kept at s3://%s/%s:\n%s", instance, output["status"], bucket, key, output["stdout"]
    )
    _require_bundle(request, [instance], params)
    return f"{instance} runs bundle {rollout.bundle_id}"


def _require_bundle(request: dict, instance_ids: list[str], params: dict) -> None:
    reports = _run_command(params).run_and_collect(request["status_document"], instance_ids, comment="bundle status")
    problems = node_report_problems(reports, request["bundle_id"])
    if problems:
        raise AirflowFailException(f"Nodes do not run bundle {request['bundle_id']}: {'; '.join(problems)}")
    log.info("%d node(s) report bundle %s: %s", len(instance_ids), request["bundle_id"], ", ".join(instance_ids))


@task.short_circuit(ignore_downstream_trigger_rules=False, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def fleet_has_instances(params: dict | None = None, ti=None) -> bool:
    """Joins the refresh path with and without a bake (the request is pulled, see
    :func:`bp_tasks.common.validated_request`)."""
    from bp_tasks.common import validated_request

    request = validated_request(ti)
    group = _autoscaling(params).describe_group_or_none(request["auto_scaling_group"])
    if group is None:
        raise AirflowFailException(
            f"{request['auto_scaling_group']} does not exist: provision the fleet with gpu_fleet_provision first"
        )
    if not group["Instances"]:
        log.info(
            "%s has no instances: nothing to refresh; instances that scale from zero boot with %s",
            request["auto_scaling_group"],
            request["pointer_value"],
        )
        return False
    return True


@task
def refresh_preferences_of(request: dict, current: dict) -> dict:
    return refresh_preferences(_rollout(request), current["warmup_seconds"])


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def verify_fleet_bundle(params: dict | None = None, ti=None) -> str:
    """Every InService node must report the new bundle. Joins the judge and, after an
    Approve, the continued judge (the request is pulled, see
    :func:`bp_tasks.common.validated_request`: a skipped refresh path must skip this)."""
    from bp_tasks.common import validated_request

    request = validated_request(ti)
    instances = _in_service(_autoscaling(params).describe_group(request["auto_scaling_group"]))
    _require_bundle(request, instances, params)
    return f"{len(instances)} node(s) run bundle {request['bundle_id']}"


def _refusal(params: dict, dag_run, dag) -> str:
    """Why validate_request refused the params: the same checks, run again."""
    problem = unknown_keys(dag_run.conf, dag.params.keys()) or connection_problem(params.get("aws_conn_id"))
    if problem:
        return problem
    try:
        RolloutRequest.from_params(params)
    except InvalidRequest as error:
        return str(error)
    return "the request could not be validated"


@task(trigger_rule=TriggerRule.ONE_FAILED)
def roll_back(
    request: dict | None,
    current: dict | None,
    params: dict | None = None,
    ti=None,
    run_id: str | None = None,
    dag_run=None,
    dag=None,
) -> dict:
    """Undo what this run changed and alert; ``rollout_outcome`` ends the run failed. A
    refused request changed nothing: it is said, not alerted."""
    from bp_aws.notifiers.ops_alert import send_alert
    from include.alerts import Alert

    if request is None:
        paragraph = f"Rollout refused: {_refusal(params, dag_run, dag)}. Nothing was changed."
        log.info(paragraph)
        return {"undone": [], "paragraph": paragraph, "back_refresh_id": None}
    rollout = _rollout(request)
    failed = sorted(task_id for task_id, state in task_states(ti, run_id).items() if state == "failed")
    undone: list[str] = []
    if current is not None:
        ssm = _ssm(params)
        try:
            outcome = pointers.restore(
                ssm.get,
                ssm.put,
                name=request["active_bundle"],
                previous=current["value"],
                written=ti.xcom_pull(task_ids="move_pointer"),
            )
            if "restored" in outcome:
                undone.append(outcome)
        except pointers.PointerMoved as error:
            undone.append(f"the pointer was NOT restored: {error}")
    back_refresh_id = None
    refresh_ids = [r for r in (ti.xcom_pull(task_ids=t) for t in ("start_refresh", "continue_refresh")) if r]
    if refresh_ids:
        pointer = _ssm(params).get(request["active_bundle"])
        steps, back_refresh_id = _undo_refresh(
            rollout, current, refresh_ids, params, pointer["Value"] if pointer else None
        )
        undone += steps
    paragraph = failure_summary(rollout, failed, undone, rollout_verdict.why_it_failed(failed, ti))
    send_alert(
        Alert(
            severity="critical",
            title=f"Bundle rollout failed on {rollout.fleet}",
            dimensions={"fleet": rollout.fleet.slug},
            detail=paragraph,
        ),
        stage=rollout.fleet.stage,
        aws_conn_id=params["aws_conn_id"],
    )
    log.error(paragraph)
    return {"undone": undone, "paragraph": paragraph, "back_refresh_id": back_refresh_id}


def _undo_refresh(
    rollout: RolloutRequest, current: dict | None, refresh_ids: list[str], params: dict, pointer_now: str | None
) -> tuple[list[str], str | None]:
    """Cancel this run's refreshes (the judge may have stopped one already); with
    auto_rollback, refresh the nodes they replaced back onto the restored bundle (AWS
    can't roll back a refresh whose AMI comes from SSM), but only when the pointer holds
    that bundle again: nodes boot with what it holds now."""
    from bp_aws.hooks.autoscaling import ACTIVE_REFRESH_STATES

    autoscaling = _autoscaling(params)
    group = rollout.fleet.auto_scaling_group
    for refresh_id in refresh_ids:
        refresh = next(iter(autoscaling.describe_instance_refreshes(group, refresh_id)), None)
        if refresh and refresh["Status"] in ("Pending", "InProgress", "Baking"):
            autoscaling.cancel_instance_refresh(group)
        if refresh and refresh["Status"] in ACTIVE_REFRESH_STATES:
            autoscaling.get_waiter("instance_refresh_ended").wait(
                AutoScalingGroupName=group,
                InstanceRefreshIds=[refresh_id],
                WaiterConfig={"Delay": 2, "MaxAttempts": 150},
            )
    ended = [r for refresh_id in refresh_ids for r in autoscaling.describe_instance_refreshes(group, refresh_id)]
    undone = [
        f"the instance refresh {r['InstanceRefreshId']} was cancelled at {r.get('PercentageComplete', 0)}%"
        for r in ended
        if r["Status"] == "Cancelled"
    ]
    replaced = any((r.get("PercentageComplete") or 0) > 0 for r in ended)
    if not (rollout.auto_rollback and replaced and current and current["value"]):
        return undone, None
    if pointer_now != current["value"]:
        undone.append(
            f"the replaced nodes were NOT refreshed back: the pointer holds {pointer_now}, not {current['value']}"
        )
        return undone, None
    again = autoscaling.start_instance_refresh(group, refresh_preferences(rollout, current["warmup_seconds"]))
    undone.append(f"the replaced nodes were refreshed back onto {current['value']} (instance refresh {again})")
    return undone, again


@task.short_circuit(ignore_downstream_trigger_rules=False)
def refreshing_back(rolled_back: dict) -> bool:
    return bool(rolled_back["back_refresh_id"])


@task(trigger_rule=TriggerRule.ALL_DONE)
def record_audit(request: dict | None, current: dict | None, params: dict | None = None, ti=None, dag_run=None) -> str:
    """One immutable record per rollout, refused ones included: written once, never replaced."""
    from bp_tasks.audit import mark_rollout, write_record
    from include.rollouts.audit import audit_record, refused_record

    run_id = dag_run.run_id
    states = {task_id: state for task_id, state in sorted(task_states(ti, run_id).items()) if task_id != ti.task_id}
    started = dag_run.start_date.isoformat() if dag_run.start_date else ""
    ended = datetime.now(UTC).isoformat()
    rolled_back = ti.xcom_pull(task_ids="roll_back") or {}
    if request is None:
        try:
            fleet = Fleet.of(params)
        except InvalidRequest:
            log.info("No audit record: the fleet itself was refused (%s)", rolled_back.get("paragraph"))
            return "no audit record: the fleet itself was refused"
        record = refused_record(
            fleet,
            run_id=run_id,
            triggered_by=dag_run.triggering_user_name,
            reason=rolled_back.get("paragraph", ""),
            conf=dict(dag_run.conf or {}),
            started_at=started,
            ended_at=ended,
        )
        return write_record(fleet.rollout_audit_key(run_id), record, params["aws_conn_id"])
    rollout = _rollout(request)
    record = audit_record(
        rollout,
        run_id=run_id,
        triggered_by=dag_run.triggering_user_name,
        from_bundle=current["value"] if current else None,
        result="failed" if any(state in FAILED_STATES for state in states.values()) else "success",
        started_at=started,
        ended_at=ended,
        task_states=states,
        rolled_back=rolled_back.get("undone", []),
        analyses=rollout_verdict.analyses_of(ti),
    )
    mark_rollout(rollout, record["result"], dag_run)
    return write_record(rollout.fleet.rollout_audit_key(run_id), record, params["aws_conn_id"])


@task(trigger_rule=TriggerRule.ALL_DONE)
def rollout_outcome(request: dict | None, ti=None, run_id: str | None = None) -> str:
    """The run's verdict, last: Airflow judges a run by its leaves (the bookkeeping succeeds anyway)."""
    rolled_back = ti.xcom_pull(task_ids="roll_back") or {}
    if request is None:
        raise RequestRefused(rolled_back.get("paragraph") or "Rollout refused. Nothing was changed.")
    failed = sorted(task_id for task_id, state in task_states(ti, run_id).items() if state in FAILED_STATES)
    if failed:
        raise AirflowFailException(rolled_back.get("paragraph") or failure_summary(_rollout(request), failed, []))
    message = f"bundle {request['bundle_id']} is live on {request['fleet_stage']}/{request['fleet_slug']}"
    log.info("%s (%s)", message, request["strategy"])
    return message
