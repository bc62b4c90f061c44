"""RolloutAnalysisOperator against the emulator in-process: the checkpoint waiter, and
each verdict's effect on the instance refresh. What the emulated nodes' agents publish,
which the end-to-end tests rely on, is checked in test_emulated_nodes.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger
from airflow.sdk.exceptions import TaskDeferred
from botocore.exceptions import WaiterError

from bp_aws.exceptions import RolloutJudgedFailed
from bp_aws.hooks.autoscaling import AutoScalingHook
from bp_aws.operators.rollout_analysis import RolloutAnalysisOperator
from devstack.fleet_metrics import put_minutely
from include.naming.fleet import Fleet
from include.rollouts import analysis
from tests.conftest import two_node_group

FLEET = Fleet("staging", "gpu-default")
BAKE = 120
NOW = datetime.now(UTC).replace(second=0, microsecond=0)
RUN_STARTED = NOW - timedelta(minutes=20)
WINDOW_START = NOW - timedelta(minutes=5)


@pytest.fixture
def fleet(aws, seeded):
    two_node_group(aws, seeded, FLEET.auto_scaling_group, tags=FLEET.tags)
    return seeded


def _start_refresh(aws, checkpoints=(50, 100)) -> str:
    return aws("autoscaling").start_instance_refresh(
        AutoScalingGroupName=FLEET.auto_scaling_group,
        Preferences={"CheckpointPercentages": list(checkpoints), "CheckpointDelay": 3600, "MinHealthyPercentage": 50},
    )["InstanceRefreshId"]


def _refresh(aws, refresh_id):
    return aws("autoscaling").describe_instance_refreshes(
        AutoScalingGroupName=FLEET.auto_scaling_group, InstanceRefreshIds=[refresh_id]
    )["InstanceRefreshes"][0]


def _checkpoint_waiter(percentage):
    return AutoScalingHook(aws_conn_id="aws_default").get_waiter(
        "instance_refresh_checkpoint", config_overrides=AutoScalingHook.checkpoint_waiter_config(percentage)
    )


def _wait(aws, refresh_id, percentage):
    _checkpoint_waiter(percentage).wait(
        AutoScalingGroupName=FLEET.auto_scaling_group,
        InstanceRefreshIds=[refresh_id],
        WaiterConfig={"Delay": 0, "MaxAttempts": 20},
    )


class FakeTaskInstance:
    def __init__(self):
        self.pushed = {}

    def xcom_push(self, key, value):
        self.pushed[key] = value


def _context():
    return {"ti": FakeTaskInstance(), "dag_run": SimpleNamespace(start_date=RUN_STARTED)}


def _operator(refresh_id, **kwargs):
    return RolloutAnalysisOperator(
        task_id="judge_refresh",
        aws_conn_id="aws_default",
        auto_scaling_group_name=FLEET.auto_scaling_group,
        instance_refresh_id=refresh_id,
        fleet_stage=FLEET.stage,
        fleet_slug=FLEET.slug,
        checkpoint_percentages=[50, 100],
        thresholds={"bake_window_seconds": BAKE, "min_jobs": 20},
        new_bundle_id="b-new",
        old_bundle="bundles/b-old",
        deferrable=True,
        **kwargs,
    )


def _plant(aws, window: dict[str, list[float]]) -> None:
    """A healthy baseline before the run started, and ``window`` in the bake window."""
    cloudwatch = aws("cloudwatch")
    healthy = {"JobCount": [30.0, 30.0], "ErrorRate": [1.0, 1.0], "JobProcessingTime": [4.0, 4.0]}
    put_minutely(cloudwatch, FLEET, healthy, RUN_STARTED - timedelta(seconds=30))
    put_minutely(cloudwatch, FLEET, window, WINDOW_START + timedelta(seconds=90))  # two minutes: +30 s, +90 s


def _judge_at_50(aws, window, **kwargs):
    refresh_id = _start_refresh(aws)
    _wait(aws, refresh_id, 50)
    _plant(aws, window)
    operator, context = _operator(refresh_id, **kwargs), _context()
    return refresh_id, operator, context


def test_the_checkpoint_waiter_stops_at_the_checkpoint_and_fails_on_a_cancelled_refresh(aws, fleet):
    refresh_id = _start_refresh(aws)

    _wait(aws, refresh_id, 50)
    paused = _refresh(aws, refresh_id)
    aws("autoscaling").cancel_instance_refresh(AutoScalingGroupName=FLEET.auto_scaling_group)

    assert (paused["Status"], paused["PercentageComplete"]) == ("InProgress", 50)
    with pytest.raises(WaiterError, match="terminal failure state"):
        _wait(aws, refresh_id, 100)


def test_a_degraded_window_stops_the_refresh_and_names_the_metric_and_its_limit(aws, fleet):
    refresh_id, operator, context = _judge_at_50(aws, {"JobCount": [30.0, 30.0], "ErrorRate": [20.0, 30.0]})

    with pytest.raises(RolloutJudgedFailed) as failed:
        operator.bake_window_ended(context, None, index=0, analyses=[], window_start=WINDOW_START.isoformat())

    assert str(failed.value) == (
        "Analysis at 50% checkpoint on 2 node(s): failed (ErrorRate 25% broke its limit <= 3%). "
        "The instance refresh was stopped at 50%."
    )
    assert _refresh(aws, refresh_id)["Status"] in ("Cancelling", "Cancelled")
    [kept] = context["ti"].pushed["analyses"]
    assert (kept["verdict"], kept["checkpoint"]) == (analysis.FAILED, "50% checkpoint")


def test_too_few_jobs_stops_the_refresh_and_asks_a_person_with_the_numbers(aws, fleet):
    refresh_id, operator, context = _judge_at_50(aws, {"JobCount": [2.0, 1.0], "ErrorRate": [0.0, 0.0]})

    verdict = operator.bake_window_ended(context, None, index=0, analyses=[], window_start=WINDOW_START.isoformat())

    assert (verdict["verdict"], verdict["checkpoint"], verdict["remaining"]) == (analysis.INCONCLUSIVE, 50, [100])
    assert "3 job(s) in the window, fewer than the 20 needed to judge" in verdict["question"]
    assert [line.split()[0] for line in verdict["question"].splitlines()[3:7]] == list(analysis.STATISTICS)
    assert "Approve to go on to 100%" in verdict["question"]
    assert _refresh(aws, refresh_id)["Status"] in ("Cancelling", "Cancelled")
    pushed = context["ti"].pushed
    assert (pushed["question"], pushed["remaining"]) == (verdict["question"], [100])


def test_once_a_person_chose_to_go_on_too_few_jobs_goes_on(aws, fleet):
    refresh_id, operator, context = _judge_at_50(
        aws, {"JobCount": [2.0, 1.0], "ErrorRate": [0.0, 0.0]}, ask_when_inconclusive=False
    )

    with pytest.raises(TaskDeferred) as deferred:
        operator.bake_window_ended(context, None, index=0, analyses=[], window_start=WINDOW_START.isoformat())

    assert deferred.value.method_name == "checkpoint_reached"
    assert deferred.value.kwargs["index"] == 1
    assert _refresh(aws, refresh_id)["Status"] == "InProgress"


def test_a_healthy_window_lets_the_refresh_go_on_to_its_next_checkpoint(aws, fleet):
    refresh_id, operator, context = _judge_at_50(
        aws, {"JobCount": [30.0, 30.0], "ErrorRate": [1.0, 2.0], "JobProcessingTime": [4.0, 4.5]}
    )

    with pytest.raises(TaskDeferred) as deferred:
        operator.bake_window_ended(context, None, index=0, analyses=[], window_start=WINDOW_START.isoformat())

    trigger = deferred.value.trigger
    assert isinstance(trigger, AwsBaseWaiterTrigger)
    assert (trigger.waiter_name, trigger.waiter_config_overrides) == (
        "instance_refresh_checkpoint",
        AutoScalingHook.checkpoint_waiter_config(100),
    )
    assert [a["verdict"] for a in deferred.value.kwargs["analyses"]] == [analysis.SUCCESS]
    assert _refresh(aws, refresh_id)["Status"] == "InProgress"


def test_while_old_nodes_work_the_new_bundles_nodes_are_judged_against_them(aws, fleet):
    cloudwatch = aws("cloudwatch")
    # the whole fleet's 2.5 % is within the before-run 1 % + 2: alone, it would pass
    refresh_id, operator, context = _judge_at_50(aws, {"JobCount": [30.0, 30.0], "ErrorRate": [2.5, 2.5]})
    for bundle, error_rate in (("b-old", 1.0), ("b-new", 4.0)):
        planted = {"JobCount": [15.0, 15.0], "ErrorRate": [error_rate] * 2}
        put_minutely(cloudwatch, FLEET, planted, WINDOW_START + timedelta(seconds=90), bundle_id=bundle)

    with pytest.raises(RolloutJudgedFailed, match=r"ErrorRate on the new bundle's nodes 4% broke its limit <= 3%"):
        operator.bake_window_ended(context, None, index=0, analyses=[], window_start=WINDOW_START.isoformat())

    [kept] = context["ti"].pushed["analyses"]
    assert kept["compared"] == analysis.CANARY
    assert kept["rows"][1] == {
        "metric": "ErrorRate",
        "before run": "1%",
        "old bundle": "1%",
        "new bundle": "4%",
        "whole fleet": "2.50%",
        "limit": "<= 3%",
        "verdict": "FAILED",
    }
    assert _refresh(aws, refresh_id)["Status"] in ("Cancelling", "Cancelled")


def test_the_last_verdict_returns_every_analysis(aws, fleet):
    _, operator, context = _judge_at_50(aws, {"JobCount": [30.0, 30.0], "ErrorRate": [1.0, 1.0]})
    earlier = [{"verdict": analysis.SUCCESS, "checkpoint": "50% checkpoint"}]

    verdict = operator.bake_window_ended(
        context, None, index=1, analyses=earlier, window_start=WINDOW_START.isoformat()
    )

    assert verdict["verdict"] == analysis.SUCCESS
    assert [a["checkpoint"] for a in verdict["analyses"]] == ["50% checkpoint", "end of the refresh"]


# --- gpu_bundle_rollback's reading of the audit records --------------------------------


def test_a_rollback_refusal_names_the_newer_rollout_from_the_fleets_audit_records(aws, seeded):
    from bp_tasks.audit import rollback_refusal, rollout_record, write_record

    base = {"result": "success", "strategy": "refresh", "triggered_by": "alice", "ended_at": "2026-11-30T08:00"}
    first = {**base, "run_id": "manual__first", "from_bundle": "bundles/b-1", "to_bundle": "bundles/b-2"}
    newer = {**first, "run_id": "manual__newer", "from_bundle": "bundles/b-2", "to_bundle": "bundles/b-3"}
    for record in (first, {**newer, "triggered_by": "bob", "ended_at": "2026-11-30T09:00"}):
        write_record(FLEET.rollout_audit_key(record["run_id"]), record, "aws_default", post=False)

    assert rollout_record(FLEET, "manual__first", "aws_default") == first
    assert rollout_record(FLEET, "manual__gone", "aws_default") is None
    found = rollout_record(FLEET, "manual__first", "aws_default")
    assert rollback_refusal(FLEET, "manual__first", found, "bundles/b-2", "aws_default") is None
    assert "bundles/b-3, not bundles/b-2 that rollout manual__first set: rollout manual__newer (triggered by bob)" in (
        rollback_refusal(FLEET, "manual__first", found, "bundles/b-3", "aws_default")
    )
