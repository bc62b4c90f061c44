"""The verdict part of ``gpu_bundle_rollout``'s refresh path, built as one piece:

``judge_refresh`` → ``judged_inconclusive`` → ``approve_going_on`` → ``continue_refresh``
→ ``judge_continued``. The judge follows the refresh from checkpoint to checkpoint
(:class:`bp_aws.operators.rollout_analysis.RolloutAnalysisOperator`); only an
inconclusive verdict lets the approval run, and only an Approve starts the rest.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from airflow.sdk import task

from bp_aws.operators.rollout_analysis import RolloutAnalysisOperator
from bp_tasks.approvals import ApprovalGate, FleetChangeApproval, every_stage
from include.rollouts import analysis

if TYPE_CHECKING:
    from include.rollouts.rollout import RolloutRequest

log = logging.getLogger("bp.gpu_bundle_rollout")

#: How long an inconclusive rollout waits for a person before it is rolled back.
ANSWER_WITHIN = timedelta(hours=4)


JUDGES = ("judge_refresh", "judge_continued")


def analyses_of(ti) -> list[dict]:
    """Every analysis this run made, in order (kept by the judges also when they fail)."""
    return [a for judge in JUDGES for a in (ti.xcom_pull(task_ids=judge, key="analyses") or [])]


def why_it_failed(failed: list[str], ti) -> str:
    """The reason a judge or a person stopped the rollout, for its paragraph."""
    if any(judge in failed for judge in JUDGES):
        verdicts = [a for a in analyses_of(ti) if a["verdict"] == "failed"]
        if verdicts:
            last = verdicts[-1]
            return f"At the {last['checkpoint']} the fleet's metrics failed: {'; '.join(last['reasons'])}"
    if "approve_going_on" in failed:
        return "Too few jobs to judge it, and a person rejected going on (or did not answer in time)"
    return ""


@task.short_circuit(ignore_downstream_trigger_rules=False)
def judged_inconclusive(verdict: dict) -> bool:
    """Only an inconclusive verdict asks a person."""
    return verdict["verdict"] == analysis.INCONCLUSIVE


@task.short_circuit(
    ignore_downstream_trigger_rules=False, pre_execute=ApprovalGate("approve_going_on", stage_of=every_stage)
)
def continue_refresh(request: RolloutRequest, current: dict, verdict: dict, params: dict | None = None) -> str | None:
    """After an Approve: a new refresh over the remaining checkpoints (AWS can't resume the
    stopped one, and SkipMatching can't tell a node on the new bundle from one on the old:
    the bundle is not in the launch template), or nothing when the refresh had ended."""
    from bp_aws.hooks.autoscaling import AutoScalingHook
    from include.rollouts.rollout import refresh_preferences

    if not verdict["remaining"]:
        log.info("The refresh had ended: the new bundle stays")
        return None
    autoscaling = AutoScalingHook(aws_conn_id=params["aws_conn_id"])
    group = request.fleet.auto_scaling_group
    active = autoscaling.active_instance_refresh(group)
    if active is not None and active["Status"] != "Cancelling":  # a retry of this task: the one it started
        log.info("Instance refresh %s is already going on", active["InstanceRefreshId"])
        return active["InstanceRefreshId"]
    if active is not None:  # the stopped refresh is still cancelling: a new one would be refused
        autoscaling.get_waiter("instance_refresh_ended").wait(
            AutoScalingGroupName=group,
            InstanceRefreshIds=[active["InstanceRefreshId"]],
            WaiterConfig={"Delay": 2, "MaxAttempts": 300},
        )
    remaining = verdict["remaining"]
    preferences = refresh_preferences(
        request, current["warmup_seconds"], tuple(remaining) if len(remaining) > 1 else ()
    )
    refresh_id = autoscaling.start_instance_refresh(group, preferences)
    log.info("Instance refresh %s goes on to %s", refresh_id, ", ".join(f"{c}%" for c in remaining))
    return refresh_id


def judged_refresh(request: Any, current: Any, refresh_id: Any, aws_conn_id: str) -> tuple[Any, Any, list[Any]]:
    """Build the verdict tasks; return the first judge, the last, and every task."""
    judge = partial(
        RolloutAnalysisOperator,
        aws_conn_id=aws_conn_id,
        auto_scaling_group_name=request["auto_scaling_group"],
        fleet_stage=request["fleet_stage"],
        fleet_slug=request["fleet_slug"],
        thresholds=request["thresholds"],
        new_bundle_id=request["bundle_id"],
        old_bundle=current["value"],
        deferrable=True,
        poll_interval=5,
    )
    judged = judge(
        task_id="judge_refresh",
        instance_refresh_id=refresh_id,
        checkpoint_percentages=request["checkpoint_percentages"],
    )
    inconclusive = judged_inconclusive(judged.output)
    approve = FleetChangeApproval(
        task_id="approve_going_on",
        stage=request["fleet_stage"],
        change="the rollout did not go on",
        rejected_outcome="It is rolled back.",
        subject="Too little traffic to judge the rollout: go on?",
        body=judged.output["question"],
        response_timeout=ANSWER_WITHIN,
    )
    going_on = continue_refresh(request, current, judged.output)
    judged_again = judge(
        task_id="judge_continued",
        instance_refresh_id=going_on,
        checkpoint_percentages=judged.output["remaining"],
        ask_when_inconclusive=False,  # a person chose to go on with this little traffic
    )
    judged >> inconclusive >> approve >> going_on >> judged_again
    return judged, judged_again, [judged, inconclusive, approve, going_on, judged_again]
