"""Task bodies of ``gpu_bundle_rollout``: AWS calls through the project's hooks,
decisions in :mod:`include.rollouts`."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import TriggerRule, serde, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks import fleet_lock, rollout_verdict
from bp_tasks.common import (
    FAILED_STATES,
    RequestRefused,
    check_bundle_in_bucket,
    handed_over,
    report_outcome,
    task_states,
    validated,
    validated_request,
)
from include.errors import InvalidRequest
from include.naming.fleet import Fleet
from include.rollouts.rollout import (
    RolloutRequest,
    bake_run_id,
    dev_node_problem,
    failure_summary,
    node_report_problems,
    refresh_preferences,
)

log = logging.getLogger("bp.gpu_bundle_rollout")

UNCHANGED = "The pointer was not moved; nothing changed."

# the request travels as itself between the run's tasks: its task processes may take it
# back from XCom (Airflow refuses any class it was not told of)
serde.allow_class(RolloutRequest)


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
def validate_request(params: dict | None = None, ti=None, dag_run=None, dag=None) -> RolloutRequest:
    """Domain checks on the params, before any AWS call. Every later task gets the
    request itself; the DAG's operators read its :meth:`~RolloutRequest.wiring` keys."""
    request = validated(RolloutRequest.from_params, params, "Nothing was changed.", dag_run=dag_run, dag=dag)
    log.info("Rollout request for %s: %s", request.fleet, request.serialize())
    return handed_over(request, ti)


@task
def check_bundle(request: RolloutRequest, params: dict | None = None) -> dict:
    """The manifest is valid and every asset is in the bucket at its size, and a dev_node
    target is a running dev node of the fleet's stage, before anything changes. Returns
    the pointer this rollout moves: the fleet's ``active_bundle``, or for ``dev_node``
    the node's own (the fleet's nodes never see a bundle tried on one node)."""
    from include.naming import platform

    bucket = _ssm(params).require(platform.models_bucket_parameter())["Value"]
    bundle = check_bundle_in_bucket(params["aws_conn_id"], bucket, request.bundle_id, f"Can't roll out. {UNCHANGED}")
    summary = f"bundle {bundle.bundle_id} ({bundle.name}): {len(bundle.assets)} asset(s), all present at their size"
    checked = {"summary": summary, "pointer": request.fleet.active_bundle, "dev_node_command": None}
    if request.strategy == "dev_node":
        from bp_aws.hooks.ec2_instances import Ec2InstanceHook
        from include.devnodes.lifecycle import registered_in

        found = Ec2InstanceHook(aws_conn_id=params["aws_conn_id"]).describe_instance(request.instance_id)
        nodes = registered_in(request.fleet.stage, _ssm(params).parameters_under)
        registered = {registration.instance_id: node for node, registration in nodes}
        problem = dev_node_problem(request.instance_id, found, request.fleet.stage, registered)
        if problem:
            raise AirflowFailException(f"Can't install on a dev node: {problem}. {UNCHANGED}")
        node = registered[request.instance_id]
        checked |= {"pointer": node.active_bundle, "dev_node_command": request.dev_node_command(node.active_bundle)}
        summary += f"; {request.instance_id} is dev node {node} of {request.fleet.stage}"
    log.info(summary)
    return checked | {"summary": summary}


@task.branch
def approval_path(request: RolloutRequest) -> str:
    """Production waits for a second person's Approve, whatever the strategy."""
    from bp_tasks.approvals import approval_or

    return approval_or(request.fleet, "approve_rollout")


def rollout_approval(request: Any, checked: Any):
    """``approve_rollout``: production waits for a second person, whatever the strategy."""
    from bp_tasks.approvals import FleetChangeApproval

    return FleetChangeApproval(
        task_id="approve_rollout",
        stage=request["fleet_stage"],
        change="the bundle was not rolled out",
        subject="Roll out a bundle to a production GPU fleet?",
        body=rollout_question(request, checked),
        response_timeout=timedelta(days=1),
    )


@task
def rollout_question(request: RolloutRequest, checked: dict) -> str:
    """What the approver reads: which bundle, where, how."""
    how = {
        "pointer_only": "nodes install it at their next boot",
        "dev_node": f"installed on dev node {request.instance_id} only",
        "refresh": f"every node replaced, judged at {list(request.checkpoint_percentages) or [100]} %",
        "bake_and_refresh": "baked into a new AMI (approved on its own), then every node replaced",
    }[request.strategy]
    return (
        f"Bundle **{request.bundle_id}** to `{request.fleet}` "
        f"({request.strategy}: {how}); pointer `{checked['pointer']}`. {checked['summary']}."
    )


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def acquire_lock(params: dict | None = None, ti=None) -> str:
    """The fleet's change lock (include.fleets.lock): one change per fleet at a time,
    whichever DAG makes it. A bake_and_refresh lets its AMI bake act under it. It joins
    the path with and without an approval (the request is pulled, see
    :func:`bp_tasks.common.validated_request`)."""
    from include.naming.platform import AMI_BUILD_DAG

    rollout: RolloutRequest = validated_request(ti)
    delegate = (AMI_BUILD_DAG, bake_run_id(ti.run_id)) if rollout.strategy == "bake_and_refresh" else None
    purpose = f"rollout of bundle {rollout.bundle_id} ({rollout.strategy})"
    return fleet_lock.take(rollout.fleet.lock, purpose, aws_conn_id=params["aws_conn_id"], ti=ti, delegate=delegate)


@task
def read_pointer(request: RolloutRequest, checked: dict, params: dict | None = None) -> dict:
    """The pointer's current bundle (kept for the rollback) and the fleet's warmup."""
    from include.fleets import config as fleet_config

    ssm = _ssm(params)
    pointer = ssm.get(checked["pointer"])
    warmup = fleet_config.deployed_warmup_seconds(ssm.get, request.fleet.desired_config)
    current = {
        "value": pointer["Value"] if pointer else None,
        "version": pointer["Version"] if pointer else 0,
        "warmup_seconds": warmup,
    }
    log.info("%s holds %s (version %s)", checked["pointer"], current["value"], current["version"])
    if request.rollback_of:  # checked again under the lock: the pointer may have moved since the plan
        from bp_tasks.audit import rollback_refusal, rollout_record

        fleet, undone = request.fleet, request.rollback_of
        record = rollout_record(fleet, undone, params["aws_conn_id"])
        aws_conn_id = params["aws_conn_id"]
        problem = rollback_refusal(fleet, undone, record, current["value"], aws_conn_id, request.pointer_value)
        if problem:
            raise AirflowFailException(f"Can't roll back rollout {undone}: {problem}. {UNCHANGED}")
    return current


@task.branch
def strategy_path(request: RolloutRequest) -> list[str]:
    """After the pointer moved: what else the strategy does."""
    if request.strategy == "pointer_only":
        log.info("pointer_only: nodes install %s at their next boot", request.pointer_value)
        return []
    return {"dev_node": ["apply_on_dev_node"], "refresh": ["fleet_has_instances"], "bake_and_refresh": ["bake_ami"]}[
        request.strategy
    ]


@task
def check_dev_node(
    request: RolloutRequest, command_id: str, params: dict | None = None, run_id: str | None = None
) -> str:
    """Keep the installer's output in the logs bucket, then ask the node what it runs."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.naming import platform

    instance = request.instance_id
    invocation = _run_command(params).invocations(command_id, [instance])[instance]
    s3 = OwnBucketsS3Hook(aws_conn_id=params["aws_conn_id"])
    bucket = platform.logs_bucket(s3.account_id)
    key = request.fleet.asset_sync_key(run_id, instance)
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
    return f"{instance} runs bundle {request.bundle_id}"


def _require_bundle(request: RolloutRequest, instance_ids: list[str], params: dict) -> None:
    bundle_id = request.bundle_id
    reports = _run_command(params).run_and_collect(request.fleet.status_document, instance_ids, comment="bundle status")
    problems = node_report_problems(reports, bundle_id)
    if problems:
        raise AirflowFailException(f"Nodes do not run bundle {bundle_id}: {'; '.join(problems)}")
    log.info("%d node(s) report bundle %s: %s", len(instance_ids), bundle_id, ", ".join(instance_ids))


@task.short_circuit(ignore_downstream_trigger_rules=False, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def fleet_has_instances(params: dict | None = None, ti=None) -> bool:
    """Joins the refresh path with and without a bake (the request is pulled, see
    :func:`bp_tasks.common.validated_request`)."""
    from bp_tasks.common import validated_request

    request: RolloutRequest = validated_request(ti)
    name = request.fleet.auto_scaling_group
    group = _autoscaling(params).describe_group_or_none(name)
    if group is None:
        raise AirflowFailException(f"{name} does not exist: provision the fleet with gpu_fleet_provision first")
    if not group["Instances"]:
        log.info(
            "%s has no instances: nothing to refresh; instances that scale from zero boot with %s",
            name,
            request.pointer_value,
        )
        return False
    return True


@task(multiple_outputs=False)
def refresh_preferences_of(request: RolloutRequest, current: dict) -> dict:
    return refresh_preferences(request, current["warmup_seconds"])


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def verify_fleet_bundle(params: dict | None = None, ti=None) -> str:
    """Every InService node must report the new bundle. Joins the judge and, after an
    Approve, the continued judge (the request is pulled, see
    :func:`bp_tasks.common.validated_request`: a skipped refresh path must skip this)."""
    from bp_tasks.common import validated_request

    request: RolloutRequest = validated_request(ti)
    instances = _in_service(_autoscaling(params).describe_group(request.fleet.auto_scaling_group))
    _require_bundle(request, instances, params)
    return f"{len(instances)} node(s) run bundle {request.bundle_id}"


@task(trigger_rule=TriggerRule.ALL_DONE)
def record_audit(
    request: RolloutRequest | None, current: dict | None, params: dict | None = None, ti=None, dag_run=None, dag=None
) -> str:
    """One immutable record per rollout, refused ones included: written once, never replaced."""
    from bp_tasks.audit import mark_rollout, write_record
    from bp_tasks.rollout_undo import refusal
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
            log.info("No audit record: the fleet itself was refused (%s)", refusal(params, dag_run, dag))
            return "no audit record: the fleet itself was refused"
        record = refused_record(
            fleet,
            run_id=run_id,
            triggered_by=dag_run.triggering_user_name,
            reason=refusal(params, dag_run, dag),
            conf=dict(dag_run.conf or {}),
            started_at=started,
            ended_at=ended,
        )
        return write_record(fleet.rollout_audit_key(run_id), record, params["aws_conn_id"])
    record = audit_record(
        request,
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
    mark_rollout(request, record["result"], dag_run)
    return write_record(request.fleet.rollout_audit_key(run_id), record, params["aws_conn_id"])


@task(trigger_rule=TriggerRule.ALL_DONE)
def rollout_outcome(
    request: RolloutRequest | None,
    params: dict | None = None,
    ti=None,
    run_id: str | None = None,
    dag_run=None,
    dag=None,
) -> str:
    """The run's verdict, last: Airflow judges a run by its leaves (the bookkeeping succeeds
    anyway). A run that failed before it held the lock changed nothing: ``roll_back`` (under
    the lock) did not run, so the paragraph and the alert are this task's."""
    from bp_tasks.rollout_undo import alert_failure, refusal

    if request is None:
        raise RequestRefused(refusal(params, dag_run, dag))
    states = task_states(ti, run_id)
    if any(state in FAILED_STATES for state in states.values()):
        paragraph = (ti.xcom_pull(task_ids="roll_back") or {}).get("paragraph")
        if paragraph is None:
            failed = sorted(task for task, state in states.items() if state == "failed")
            paragraph = failure_summary(request, failed, [], rollout_verdict.why_it_failed(failed, ti))
            alert_failure(request, paragraph, params["aws_conn_id"])
        raise AirflowFailException(paragraph)
    from include.rollouts.analysis import Analysis

    message = f"bundle {request.bundle_id} is live on {request.fleet}"
    verdicts = [Analysis.from_dict(a) for a in rollout_verdict.analyses_of(ti)]
    report_outcome(
        *(line for a in verdicts for line in [a.summary(), *a.table().splitlines()]),
        f"{message} ({request.strategy})",
    )
    return message
