"""Task bodies of ``gpu_ami_revoke``: the plan from each pointer's history, the fleets'
locks, the pointers put back and the image tagged, the refreshes, the record and alert."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from airflow.sdk import TriggerRule, serde, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.approvals import ApprovalGate
from bp_tasks.common import RequestRefused, validated
from include.amis import revocation
from include.approvals import APPROVAL_STAGES
from include.rollouts import pointers

log = logging.getLogger("bp.gpu_ami_revoke")
UNCHANGED = "Nothing was changed."

# the request and the plan travel as themselves between the run's tasks: its task
# processes may take them back from XCom (Airflow refuses any class it was not told of)
serde.allow_class(revocation.RevocationRequest)
serde.allow_class(revocation.RevocationPlan)


@task
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> revocation.RevocationRequest:
    """Domain checks on the params, before any AWS call."""
    request = validated(revocation.RevocationRequest.from_params, params, UNCHANGED, dag_run=dag_run, dag=dag)
    log.info("Revocation of %s: %s", request.image_id, request.reason)
    return request


@task
def plan_revocation(request: revocation.RevocationRequest, params: dict | None = None) -> revocation.RevocationPlan:
    """The images revoked (the one asked and those baked from it, inherited), which fleet
    pointers go back to which image (their own history says), which moved since and are
    left alone; refused, changing nothing, when it can't be done."""
    from bp_aws.exceptions import AwsResourceNotFound
    from bp_aws.hooks.ami import AmiHook
    from bp_aws.hooks.ssm_parameters import SsmParameterHook
    from include.amis.retention import BASE_AMI_TAG
    from include.naming import platform

    images, ssm = AmiHook(aws_conn_id=params["aws_conn_id"]), SsmParameterHook(aws_conn_id=params["aws_conn_id"])

    def describe(image_id: str) -> dict | None:
        try:
            return images.describe_image(image_id)
        except AwsResourceNotFound:
            return None

    image_id = request.image_id
    try:
        tags = revocation.check_provenance(image_id, describe(image_id))
        names = sorted(ssm.parameters_under(platform.AMI_POINTERS_ROOT))
        descendants = revocation.descendants_of(image_id, lambda parent: images.images_tagged({BASE_AMI_TAG: parent}))
        plan = revocation.plan(image_id, tags, {name: ssm.history(name) for name in names}, descendants)
        revocation.check_previous_images(plan, {r.previous_image: describe(r.previous_image) for r in plan.restores})
    except revocation.RevocationRefused as refused:
        raise RequestRefused(f"Refused: {refused}. {UNCHANGED}") from None
    log.info("Plan for %s:\n%s", image_id, "\n".join(plan.lines()))
    return plan


@task.branch
def revocation_path(plan: revocation.RevocationPlan) -> str:
    return "approve_revocation" if plan.needs_approval else "acquire_locks"


@task
def revocation_question(request: revocation.RevocationRequest, plan: revocation.RevocationPlan) -> str:
    lines = "\n".join(f"- {line}" for line in plan.lines())
    inherited = f" and the {len(plan.descendants)} image(s) baked from it" if plan.descendants else ""
    return f"Revoke AMI **{request.image_id}**{inherited} ({request.reason})? What changes:\n\n{lines}"


def _plan(ti) -> revocation.RevocationPlan:
    return ti.xcom_pull(task_ids="plan_revocation")


def _approving_stage(context) -> str | None:
    """The revocation asked an approval when a production fleet or image is concerned."""
    return APPROVAL_STAGES[0] if _plan(context["ti"]).needs_approval else None


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def acquire_locks(params: dict | None = None, ti=None) -> list[str]:
    """Each affected fleet's change lock, in name order (the rollouts' lock): all or none.
    It joins the paths with and without an approval, so the plan is pulled."""
    from bp_tasks.fleet_lock import give_back, take

    taken: list[str] = []
    for lock in sorted({restore.fleet.lock for restore in _plan(ti).restores}):
        try:
            take(lock, "AMI revocation", aws_conn_id=params["aws_conn_id"], ti=ti)
        except AirflowFailException:
            for held in taken:
                give_back(held, aws_conn_id=params["aws_conn_id"], dag_id=ti.dag_id, run_id=ti.run_id)
            raise
        taken.append(lock)
    return taken


@task(pre_execute=ApprovalGate("approve_revocation", stage_of=_approving_stage))
def revoke(
    request: revocation.RevocationRequest, params: dict | None = None, ti=None, run_id: str | None = None
) -> list[dict]:
    """Tag the image and those baked from it revoked (from now on nothing promotes them),
    put each pointer back if it still names the image of the tree it named, and start a
    refresh on each of those fleets with nodes.
    Returns the refreshes (what ``wait_for_refreshes`` maps over); what was restored and
    left alone are XComs of their own (``restored``, ``left_alone``)."""
    from bp_aws.hooks.ami import AmiHook
    from bp_aws.hooks.autoscaling import AutoScalingHook
    from bp_aws.hooks.ssm_parameters import SsmParameterHook
    from include.fleets.config import deployed_warmup_seconds
    from include.rollouts.rollout import fleet_refresh_preferences

    conn = params["aws_conn_id"]
    plan, ssm, autoscaling = _plan(ti), SsmParameterHook(aws_conn_id=conn), AutoScalingHook(aws_conn_id=conn)
    images = AmiHook(aws_conn_id=conn)
    images.tag_image(plan.image_id, revocation.revoked_tags(request.reason, run_id))
    log.info("%s tagged revoked: %s", plan.image_id, request.reason)
    for descendant in plan.descendants:
        images.tag_image(descendant.image_id, revocation.revoked_tags(request.reason, run_id, plan.image_id))
        log.info("%s tagged revoked: baked from %s", descendant.image_id, descendant.base_ami)
    restored, refreshes, left_alone = [], [], [f"{m.pointer} (now {m.now}, by {m.modified_by})" for m in plan.moved]
    for restore in plan.restores:
        try:
            said = pointers.restore(
                ssm.get,
                ssm.put,
                name=restore.pointer,
                previous=restore.previous_image,
                written={"changed": True, "version": restore.version},
                data_type="aws:ec2:image",
            )
        except pointers.PointerMoved as moved:
            left_alone.append(str(moved))
            continue
        restored.append(said)
        group = autoscaling.describe_group_or_none(restore.fleet.auto_scaling_group)
        if group and group["DesiredCapacity"] > 0:
            preferences = fleet_refresh_preferences(deployed_warmup_seconds(ssm.get, restore.fleet.desired_config))
            refresh_id = autoscaling.start_instance_refresh(group["AutoScalingGroupName"], preferences)
            refreshes.append(
                {"auto_scaling_group_name": group["AutoScalingGroupName"], "instance_refresh_id": refresh_id}
            )
            log.info("%s: refresh %s replaces %d node(s)", restore.fleet, refresh_id, group["DesiredCapacity"])
    for line in [*restored, *(f"left alone: {line}" for line in left_alone)]:
        log.info("%s", line)
    ti.xcom_push(key="restored", value=restored)
    ti.xcom_push(key="left_alone", value=left_alone)
    return refreshes


@task(trigger_rule=TriggerRule.ALL_DONE)
def record_revocation(
    request: revocation.RevocationRequest | None, params: dict | None = None, ti=None, dag_run=None
) -> str:
    """An immutable audit record and a critical alert: what was revoked, which pointers
    went back, which were left alone, how each fleet's refresh ended."""
    from bp_aws.notifiers.ops_alert import send_alert
    from bp_tasks.audit import mark_change, write_record
    from bp_tasks.common import task_states
    from include.alerts import Alert
    from include.naming import platform

    done = ti.xcom_pull(task_ids="revoke", key="restored")
    if request is None or done is None:
        said = f"The image was not revoked: the run stopped before any change. {UNCHANGED}"
        log.info("%s", said)
        return said
    refreshes = ti.xcom_pull(task_ids="revoke") or []
    mapped = [  # the mapped waits are reported as wait_for_refreshes_<map index>
        state for task_id, state in task_states(ti, dag_run.run_id).items() if task_id.startswith("wait_for_refreshes_")
    ]
    if not refreshes:
        refresh_state = "none (no fleet had nodes)"
    else:
        refresh_state = "success" if mapped and set(mapped) == {"success"} else ", ".join(sorted(map(str, mapped)))
    left_alone = ti.xcom_pull(task_ids="revoke", key="left_alone") or []
    record = {
        "at": datetime.now(UTC).isoformat(),
        "dag_id": dag_run.dag_id,
        "run_id": dag_run.run_id,
        "image_id": request.image_id,
        "reason": request.reason,
        "inherited": [d.image_id for d in _plan(ti).descendants],
        "restored": done,
        "left_alone": left_alone,
        "refreshes": refreshes,
        "refresh_state": refresh_state,
    }
    uri = write_record(
        platform.ami_revocation_audit_key(request.image_id, dag_run.run_id), record, params["aws_conn_id"]
    )
    inherited = record["inherited"]
    paragraph = (
        f"AMI {request.image_id} was revoked ({request.reason})"
        + (f" with the image(s) baked from it, {', '.join(inherited)}" if inherited else "")
        + ": "
        + ("; ".join(done) if done else "no pointer named it")
        + (f"; left alone: {'; '.join(left_alone)}" if left_alone else "")
        + f". Refreshes: {record['refresh_state']}. Record: {uri}."
    )
    for restore in _plan(ti).restores:
        if not any(restore.pointer in line for line in left_alone):
            text = f"AMI {restore.revoked or request.image_id} revoked: back to {restore.previous_image}"
            mark_change("ami_revocation", restore.fleet_stage, restore.fleet_slug, text, dag_run)
    stage = _plan(ti).image_stage or "staging"
    send_alert(
        Alert(severity="critical", title=f"AMI {request.image_id} revoked", detail=paragraph),
        stage=stage if stage in platform.STAGES else "staging",
        aws_conn_id=params["aws_conn_id"],
    )
    return paragraph


@task(trigger_rule=TriggerRule.ALL_DONE)
def release_locks(params: dict | None = None, ti=None, dag_run=None) -> list[str]:
    """Whatever happened: each lock this run took goes back (never another run's)."""
    from bp_tasks.fleet_lock import give_back

    taken = ti.xcom_pull(task_ids="acquire_locks") or []
    return [
        give_back(lock, aws_conn_id=params["aws_conn_id"], dag_id=dag_run.dag_id, run_id=dag_run.run_id)
        for lock in taken
    ]
