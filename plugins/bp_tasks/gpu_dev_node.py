"""Task bodies of ``gpu_dev_node`` and ``gpu_dev_node_idle_stop``: AWS reads through the
project's hooks, the lifecycle rules in :mod:`include.devnodes`."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import TriggerRule, serde, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks import fleet_lock
from bp_tasks.common import FAILED_STATES, RequestRefused, handed_over, report_outcome, task_states, validated
from include.devnodes import lifecycle
from include.devnodes.lifecycle import DevNodeRequest, Registration
from include.naming.dev_node import HEARTBEAT_WRITER_TAG, DevNode

log = logging.getLogger("bp.gpu_dev_node")

UNCHANGED = "Nothing was changed."
DAG_ID = "gpu_dev_node"

# the request travels as itself between the run's tasks: its task processes may take it
# back from XCom (Airflow refuses any class it was not told of)
serde.allow_class(DevNodeRequest)


def _ssm(aws_conn_id: str):
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    return SsmParameterHook(aws_conn_id=aws_conn_id)


def _ec2(aws_conn_id: str):
    from bp_aws.hooks.ec2_instances import Ec2InstanceHook

    return Ec2InstanceHook(aws_conn_id=aws_conn_id)


def read_registration(node: DevNode, aws_conn_id: str) -> Registration | None:
    return Registration.from_parameters(node, _ssm(aws_conn_id).parameters_under(node.root))


@task
def validate_request(params: dict | None = None, ti=None, dag_run=None, dag=None) -> DevNodeRequest:
    """Domain checks on the params, before any AWS call. Every later task gets the
    request itself; the DAG's operators read its :meth:`~DevNodeRequest.wiring` keys."""
    request = validated(DevNodeRequest.from_params, params, UNCHANGED, dag_run=dag_run, dag=dag)
    log.info("%s of dev node %s: %s", request.action, request.node, request.serialize())
    return handed_over(request, ti)


@task
def acquire_lock(request: DevNodeRequest, params: dict | None = None, ti=None, dag_run=None) -> str:
    """The node's lock: one action per node at a time (a second is refused, naming the run).
    It is the setup of the run's changes: refused, nothing after it runs, ``record_lifecycle``
    included, so the refusal records its own lifecycle event."""
    try:
        return fleet_lock.take(request.lock, f"dev node {request.action}", aws_conn_id=params["aws_conn_id"], ti=ti)
    except AirflowFailException:
        _record(request, ["acquire_lock"], params["aws_conn_id"], ti, dag_run)
        raise


@task
def inspect_node(request: DevNodeRequest, params: dict | None = None) -> dict:
    """What AWS and the registry hold, and whether the action may go on: every refusal
    here comes before the node is changed."""
    aws_conn_id = params["aws_conn_id"]
    node = request.node
    registration = read_registration(node, aws_conn_id)
    ec2 = _ec2(aws_conn_id)
    instance = ec2.describe_instance(registration.instance_id) if registration else None
    problem = lifecycle.refusal(request, registration, instance)
    state = lifecycle.state_of(instance)
    plan: dict[str, Any] = {
        "instance_id": registration.instance_id if registration else None,
        "from_state": state,
        "registration": registration.as_dict() if registration else None,
        "nothing_to_do": lifecycle.nothing_to_do(request.action, state),
        "resource_name": node.resource_name,
        "approval_reason": None,
        # what the approver of a terminate reads (approve_terminate): the node, and why it asks
        "approval_subject": None,
        "approval_body": None,
    }
    if problem is None and request.action == "create":
        plan, problem = _create_plan(request, plan, aws_conn_id)
    if problem is None and request.action == "stop" and state == "running":
        from bp_aws.hooks.run_command import RunCommandHook
        from include.naming import platform

        applies = RunCommandHook(aws_conn_id=aws_conn_id).invocations_of(
            registration.instance_id, platform.bundle_apply_document(node.stage)
        )
        problem = lifecycle.busy_commands_problem(node, registration.instance_id, applies)
    if problem is None and request.action == "terminate" and not plan["nothing_to_do"]:
        reason = lifecycle.terminate_needs_approval(node, registration, datetime.now(UTC))
        if reason:
            plan |= {
                "approval_reason": reason,
                "approval_subject": f"Terminate dev node {node}?",
                "approval_body": f"{reason}: its disk goes with it.",
            }
    if problem:
        raise RequestRefused(f"Can't {request.action} dev node {node}: {problem}. {UNCHANGED}")
    log.info("Dev node %s is %s; %s: %s", node, state, request.action, plan)
    return plan


def _create_plan(request: DevNodeRequest, plan: dict, aws_conn_id: str) -> tuple[dict, str | None]:
    """The launch of a new node: the fleet's AMI, an instance type its template allows,
    the stage's private subnet and the node's tags."""
    from include.fleets import config as fleet_config
    from include.naming import platform

    fleet = request.source_fleet
    ssm = _ssm(aws_conn_id)
    pointer = ssm.get(fleet.ami_pointer)
    if pointer is None:
        return plan, f"fleet {fleet} has no AMI pointer ({fleet.ami_pointer}): bake one with gpu_ami_build_and_bake"
    config = ssm.get(fleet.desired_config)
    if config is None:
        return plan, f"fleet {fleet} has no desired_config ({fleet.desired_config}): its template is unknown"
    try:
        template_slug = fleet_config.parse_desired_config(config["Value"], source=config["Name"]).template_slug
    except fleet_config.InvalidFleetConfig as error:
        return plan, f"fleet {fleet}'s desired_config can't be read: {error}"
    allowed = fleet_config.templates()[template_slug].instance_types
    problem = lifecycle.instance_type_problem(request.instance_type, allowed, fleet)
    if problem:
        return plan, problem
    subnets = ssm.require(platform.private_subnet_ids())["Value"]
    plan.update(
        {
            "image_id": pointer["Value"],
            "instance_type": request.instance_type,
            "vpc_id": ssm.require(platform.vpc_id())["Value"],
            "subnet_id": subnets.split(",")[0].strip(),
            "instance_profile": request.node.instance_profile,
            "tags": request.node.tags(request.owner),
            "identity_tags": request.node.identity_tags(),
            "user_data": lifecycle.user_data(request.node),
        }
    )
    return plan, None


@task.branch
def action_path(request: DevNodeRequest, plan: dict) -> list[str]:
    if request.action == "status":
        return ["report_status"]
    if plan["approval_reason"]:
        log.info("Terminating %s waits for an Approve: %s", request.node, plan["approval_reason"])
        return ["approve_terminate"]
    return ["go_ahead"]


def terminate_approval_stage(context) -> str | None:
    """``act``'s gate: the node's stage when ``inspect_node`` asked an approval (a
    terminate in production, or of a node under an hour old), else None."""
    plan = context["ti"].xcom_pull(task_ids="inspect_node")
    return context["params"]["fleet_stage"] if plan and plan["approval_reason"] else None


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, multiple_outputs=False)
def go_ahead(ti=None) -> dict:
    """The plan, once the path to the change is clear (with or without an Approve); pulled,
    not passed, so that a skipped path never starts it (see ``validated_request``)."""
    return ti.xcom_pull(task_ids="inspect_node")


@task(multiple_outputs=False)
def report_status(request: DevNodeRequest, plan: dict, params: dict | None = None) -> dict:
    """AWS, the registry and where they differ, as one table; the registry then takes AWS's state."""
    from include.tables import format_table

    node = request.node
    registration = Registration(**plan["registration"])
    instance = _ec2(params["aws_conn_id"]).describe_instance(registration.instance_id)
    drift = lifecycle.drift(node, registration, instance)
    rows = [(field, value, _aws_value(field, instance)) for field, value in registration.as_dict().items()]
    log.info("Dev node %s:\n%s", node, format_table(("field", "registry", "aws"), rows))
    if drift:
        log.warning("Drift between the registry and AWS (the registry now takes AWS's state): %s", "; ".join(drift))
    if instance and lifecycle.state_of(instance) == "running":
        forward = lifecycle.port_forward_command(instance["InstanceId"])
        log.info("Open ComfyUI on it: %s, then http://localhost:8188", forward)  # the run's outcome says it too
    return {"state": lifecycle.state_of(instance), "drift": drift}


def _aws_value(field: str, instance: dict | None) -> str:
    from include.naming import platform

    if instance is None:
        return "absent"
    return {
        "instance_id": instance.get("InstanceId"),
        "state": lifecycle.state_of(instance),
        "owner": platform.tags_of(instance).get(platform.OWNER_TAG),
        "instance_type": instance.get("InstanceType"),
    }.get(field, "")


@task(trigger_rule=TriggerRule.ALL_DONE, multiple_outputs=False)
def record_lifecycle(request: DevNodeRequest, params: dict | None = None, ti=None, dag_run=None) -> dict:
    """Whatever happened once the node's lock was taken: the registry takes what AWS says
    now, and one immutable lifecycle event says who did what, from which state to which,
    how long it took."""
    states = {k: v for k, v in task_states(ti, dag_run.run_id).items() if k not in (ti.task_id, "outcome")}
    failed = sorted(task_id for task_id, state in states.items() if state in FAILED_STATES)
    return _record(request, failed, params["aws_conn_id"], ti, dag_run)


def _record(request: DevNodeRequest, failed: list[str], aws_conn_id: str, ti, dag_run) -> dict:
    from bp_tasks.audit import write_record

    node = request.node
    plan = ti.xcom_pull(task_ids="inspect_node") or {}
    acted = ti.xcom_pull(task_ids="act") or {}
    # refused before the inspection (the lock): the registry still says whose node it is
    if plan:
        previous = Registration(**plan["registration"]) if plan["registration"] else None
    else:
        previous = read_registration(node, aws_conn_id)
    ec2 = _ec2(aws_conn_id)
    instance_id = acted.get("instance_id") or (previous.instance_id if previous else None)
    if request.action == "create" and not acted and "inspect_node" not in failed:
        # the create failed after its launch: the instance it made, not the node's earlier one
        found = ec2.instances_tagged(node.identity_tags())
        instance_id = found[0]["InstanceId"] if found else instance_id
    instance = ec2.describe_instance(instance_id) if instance_id else None
    now = datetime.now(UTC)
    result = "refused" if "inspect_node" in failed or "acquire_lock" in failed else ("failed" if failed else "success")
    if result == "refused":
        instance = None  # nothing was changed: the registry stays as it is
    if instance is not None:
        created = request.action == "create" and (previous is None or previous.instance_id != instance_id)
        kept = None if created else previous
        values = lifecycle.registry_values(
            instance=instance,
            owner=kept.owner if kept else request.owner or "",
            source_fleet=kept.source_fleet if kept else str(request.source_fleet or ""),
            idle_stop_minutes=kept.idle_stop_minutes if kept else request.idle_stop_minutes,
            created_at=kept.created_at if kept else now.isoformat(),
            heartbeat=now.isoformat() if acted.get("ready") else None,
            previous=kept,
        )
        ssm = _ssm(aws_conn_id)
        for field, value in values.items():
            ssm.put(node.registry_parameter(field), value or "none", description=f"dev node {node} ({field})")
        if created:  # the new instance's agent, and only it, may write the heartbeat
            ssm.add_tags(node.heartbeat_parameter, {HEARTBEAT_WRITER_TAG: instance_id})
        log.info("Registry %s/: %s", node.root, values)
    owner = (previous.owner if previous else None) or request.owner
    started = dag_run.start_date or now
    event = lifecycle.lifecycle_event(
        request,
        run_id=dag_run.run_id,
        actor=dag_run.triggering_user_name,
        instance_id=instance_id,
        instance_type=(instance or {}).get("InstanceType") or (previous.instance_type if previous else None),
        owner=owner,
        from_state=plan.get("from_state", "unknown"),
        to_state=lifecycle.state_of(instance) if instance is not None else plan.get("from_state", "unknown"),
        result=result,
        started_at=started,
        ended_at=now,
        ready_seconds=acted.get("seconds") if acted.get("ready") else None,
        detail="; ".join(failed),
    )
    location = write_record(node.lifecycle_event_key(dag_run.run_id), event, aws_conn_id, post=False)
    return {
        "event": location,
        "result": result,
        "to_state": event["to_state"],
        "failed": failed,
        "instance_id": instance_id,
        "ready_seconds": event["ready_seconds"],
    }


@task(trigger_rule=TriggerRule.ALL_DONE)
def outcome(request: DevNodeRequest | None, recorded: dict | None, ti=None, run_id: str | None = None) -> str:
    """The run's verdict in one paragraph, as its last task."""
    if request is None:
        raise RequestRefused(f"Dev node request refused. {UNCHANGED}")
    failed = sorted(t for t, s in task_states(ti, run_id).items() if s in FAILED_STATES and t != ti.task_id)
    node, action = request.node, request.action
    if not failed:
        message = f"{action} of dev node {node}: {recorded['to_state']}"
        ready = f", ready after {recorded['ready_seconds']} s" if recorded.get("ready_seconds") is not None else ""
        lines = [f"{message} ({recorded.get('instance_id')}{ready}); lifecycle event {recorded['event']}"]
        if recorded["to_state"] == "running" and recorded.get("instance_id"):
            forward = lifecycle.port_forward_command(recorded["instance_id"])
            lines.append(f"Open ComfyUI on it: {forward}, then http://localhost:8188")
        report_outcome(*lines)
        return message
    if "acquire_lock" in failed or (recorded or {}).get("result") == "refused":
        raise RequestRefused(f"The {action} of dev node {node} was refused before anything changed (see {failed[0]}).")
    raise AirflowFailException(
        f"The {action} of dev node {node} failed in {', '.join(failed)}. The node is "
        f"{(recorded or {}).get('to_state', 'unknown')} now (the registry says so too); nothing was rolled back: "
        f"look at it with action=status, and stop or terminate it if it is not wanted. The lifecycle event is at "
        f"{(recorded or {}).get('event')}."
    )
