"""The undo part of ``gpu_bundle_rollout``: whatever failed once the fleet's lock was
taken, ``roll_back`` puts the pointer back over this run's own write only, cancels this
run's refreshes and, with ``auto_rollback``, refreshes the replaced nodes back onto the
restored bundle; then one critical alert with the paragraph ``rollout_outcome`` ends the
run with. It runs under the lock (inside its setup/teardown scope), so it never runs
when the lock was not taken: then nothing had changed, and ``rollout_outcome`` says so
(and alerts, unless the request itself was refused: that is said, not alerted)."""

from __future__ import annotations

import logging

from airflow.sdk import TriggerRule, task

from bp_tasks import rollout_verdict
from bp_tasks.common import RequestRefused, task_states, validated
from include.rollouts import pointers
from include.rollouts.rollout import RolloutRequest, failure_summary, refresh_preferences

log = logging.getLogger("bp.gpu_bundle_rollout")


def _ssm(params: dict):
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    return SsmParameterHook(aws_conn_id=params["aws_conn_id"])


def _autoscaling(params: dict):
    from bp_aws.hooks.autoscaling import AutoScalingHook

    return AutoScalingHook(aws_conn_id=params["aws_conn_id"])


def refusal(params: dict, dag_run, dag) -> str:
    """The paragraph of a request ``validate_request`` refused: the same check, run again
    for its words."""
    try:
        validated(RolloutRequest.from_params, params, "Nothing was changed.", dag_run=dag_run, dag=dag)
    except RequestRefused as refused:
        return f"Rollout refused: {str(refused).removeprefix('Invalid request: ')}"
    return "Rollout refused: the request could not be validated. Nothing was changed."


def alert_failure(rollout: RolloutRequest, paragraph: str, aws_conn_id: str) -> None:
    """The one critical alert of a failed rollout, with its paragraph."""
    from bp_aws.notifiers.ops_alert import send_alert
    from include.alerts import Alert

    alert = Alert(
        severity="critical",
        title=f"Bundle rollout failed on {rollout.fleet}",
        dimensions={"fleet": rollout.fleet.slug},
        detail=paragraph,
    )
    send_alert(alert, stage=rollout.fleet.stage, aws_conn_id=aws_conn_id)


@task(trigger_rule=TriggerRule.ONE_FAILED)
def roll_back(
    request: RolloutRequest,
    checked: dict,
    current: dict | None,
    params: dict | None = None,
    ti=None,
    run_id: str | None = None,
) -> dict:
    """Undo what this run changed under its lock and alert; ``rollout_outcome`` ends the run failed."""
    failed = sorted(task_id for task_id, state in task_states(ti, run_id).items() if state == "failed")
    undone: list[str] = []
    if current is not None:  # the pointer was read: check_bundle said which
        ssm = _ssm(params)
        try:
            outcome = pointers.restore(
                ssm.get,
                ssm.put,
                name=checked["pointer"],
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
        pointer = _ssm(params).get(request.fleet.active_bundle)
        steps, back_refresh_id = _undo_refresh(
            request, current, refresh_ids, params, pointer["Value"] if pointer else None
        )
        undone += steps
    paragraph = failure_summary(request, failed, undone, rollout_verdict.why_it_failed(failed, ti))
    alert_failure(request, paragraph, params["aws_conn_id"])
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
