"""Nodes leave without killing their jobs, end to end: a fleet provisioned by
gpu_fleet_provision from gpu-fleet.yaml (its termination hook), the emulator holding leaving
nodes in ``Terminating:Wait`` (devstack/emulator/lifecycle.py) and reclaiming planted Spot
instances (devstack/emulator/spot.py), and each node's real agent draining it while its
ComfyUI double runs long prompts (tests/doubles/fleet_nodes.py)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.emulator.spot import SPOT_TAG
from devstack.fleet_metrics import put_minutely
from include.naming.fleet import Fleet
from tests.doubles.fleet_nodes import PROMPT_SECONDS_TAG
from tests.e2e.helpers import (
    FLEET_CONFIG,
    log,
    provision_fleet,
    remove_fleet,
    run_to_end,
    sample_bundles,
    scale,
    states,
)

pytestmark = [pytest.mark.e2e, pytest.mark.amis]

ROLLOUT = "gpu_bundle_rollout"
DRAIN_TIMEOUT = 60  # the smallest a desired_config takes: the stuck node waits that long


@pytest.fixture(scope="module")
def bundles(stack):
    return sample_bundles(stack)


@pytest.fixture(scope="module")
def fleet(stack, client, bundles):
    config = {**FLEET_CONFIG, "drain_timeout_seconds": DRAIN_TIMEOUT}
    provisioned = provision_fleet(stack, client, "e2e-drain", bundles[0], config=config)
    yield provisioned
    remove_fleet(stack, provisioned)


def _tag_group(stack, fleet: Fleet, key: str, value: str | None) -> None:
    autoscaling = stack.aws_client()("autoscaling")
    tag = {"ResourceId": fleet.auto_scaling_group, "ResourceType": "auto-scaling-group", "Key": key}
    if value is None:
        autoscaling.delete_tags(Tags=[tag])
    else:
        autoscaling.create_or_update_tags(Tags=[{**tag, "Value": value, "PropagateAtLaunch": False}])


def _instances(stack, fleet: Fleet) -> dict[str, str]:
    [group] = stack.aws_client()("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[fleet.auto_scaling_group]
    )["AutoScalingGroups"]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def _settled(stack, fleet: Fleet, capacity: int, timeout: float = 120) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _instances(stack, fleet)
        if len(found) == capacity and all(state == "InService" for state in found.values()):
            return found
        time.sleep(2)
    raise AssertionError(f"{fleet} never settled at {capacity} node(s) in service: {_instances(stack, fleet)}")


def _fresh(stack, fleet: Fleet, nodes: int, prompt_seconds: float | None = None) -> dict[str, str]:
    """The fleet at ``nodes`` new nodes, running prompts of ``prompt_seconds`` one at a
    time (None: the healthy traffic). The nodes before go first: unprotected (a busy node
    protects itself from scale-in), scaled in, drained."""
    _tag_group(stack, fleet, PROMPT_SECONDS_TAG, None)
    if before := list(_instances(stack, fleet)):
        stack.aws_client()("autoscaling").set_instance_protection(
            InstanceIds=before, AutoScalingGroupName=fleet.auto_scaling_group, ProtectedFromScaleIn=False
        )
    scale(stack, fleet, 0)
    _settled(stack, fleet, 0)
    if prompt_seconds is not None:
        _tag_group(stack, fleet, PROMPT_SECONDS_TAG, str(prompt_seconds))
    scale(stack, fleet, nodes)
    return _settled(stack, fleet, nodes)


def _sum(stack, fleet: Fleet, metric: str, statistic: str, since: datetime) -> float | None:
    end = datetime.now(UTC) + timedelta(minutes=1)
    [result] = stack.aws_client()("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "ComfyUI/Workers",
                        "MetricName": metric,
                        "Dimensions": fleet.metric_dimensions,
                    },
                    "Period": 3600,
                    "Stat": statistic,
                },
            }
        ],
        StartTime=since - timedelta(minutes=1),
        EndTime=end,
    )["MetricDataResults"]
    return result["Values"][0] if result["Values"] else None


def test_a_refresh_of_nodes_running_long_prompts_kills_none(stack, client, fleet, bundles):
    _fresh(stack, fleet, 2, prompt_seconds=6)  # each node runs 6-second prompts, one at a time
    before = stack.node_agents()
    began = datetime.now(UTC)
    conf = {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug, "bundle_id": bundles[1], "strategy": "refresh"}

    run = run_to_end(client, ROLLOUT, conf | {"checkpoint_percentages": [], "bake_window_seconds": 15, "min_jobs": 2})

    after = stack.node_agents()
    assert run.state == "success", states(client, ROLLOUT, run)
    assert after["drains"] - before["drains"] == 2  # both old nodes drained before they went
    assert after["abandoned_jobs"] == before["abandoned_jobs"]
    assert _sum(stack, fleet, "DrainAbandonedJobs", "Sum", began) == 0
    assert 0 < _sum(stack, fleet, "DrainSeconds", "Maximum", began) <= 15  # a 6-second prompt, and a few ticks
    judged = log(client, ROLLOUT, run, "judge_refresh")
    assert any(line.split()[:1] == ["LeaseExpiredCount"] and line.split()[-1] == "ok" for line in judged.splitlines())


def test_a_node_whose_prompt_never_ends_goes_at_its_drain_deadline_and_the_figures_say_so(stack, client, fleet):
    [stuck] = _fresh(stack, fleet, 1, prompt_seconds=100_000)
    time.sleep(4)  # its agent saw the prompt start (and protects the node)
    began = datetime.now(UTC)
    autoscaling = stack.aws_client()("autoscaling")
    refresh = autoscaling.start_instance_refresh(
        AutoScalingGroupName=fleet.auto_scaling_group,
        Preferences={"ScaleInProtectedInstances": "Refresh", "MinHealthyPercentage": 0},
    )["InstanceRefreshId"]

    deadline = time.monotonic() + DRAIN_TIMEOUT + 90
    while time.monotonic() < deadline:
        [found] = autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=fleet.auto_scaling_group, InstanceRefreshIds=[refresh]
        )["InstanceRefreshes"]
        if found["Status"] == "Successful":
            break
        time.sleep(3)
    took = (datetime.now(UTC) - began).total_seconds()

    _tag_group(stack, fleet, PROMPT_SECONDS_TAG, None)
    assert found["Status"] == "Successful", found
    assert stuck not in _instances(stack, fleet)
    assert took >= DRAIN_TIMEOUT  # held until the agent's deadline, not a moment less
    assert _sum(stack, fleet, "DrainAbandonedJobs", "Sum", began) == 1
    assert DRAIN_TIMEOUT <= _sum(stack, fleet, "DrainSeconds", "Maximum", began) <= DRAIN_TIMEOUT + 10


def test_a_spot_notice_drains_the_node_which_is_replaced_and_the_guardrails_see_no_leak(stack, client, fleet):
    victim = sorted(_fresh(stack, fleet, 2))[0]
    began = datetime.now(UTC)
    at = (began + timedelta(seconds=25)).strftime("%Y-%m-%dT%H:%M:%SZ")
    stack.aws_client()("ec2").create_tags(Resources=[victim], Tags=[{"Key": SPOT_TAG, "Value": at}])

    deadline = time.monotonic() + 120
    while victim in _instances(stack, fleet) and time.monotonic() < deadline:
        time.sleep(2)
    replaced = _settled(stack, fleet, 2)
    # what the backend reports while the fleet works: jobs queued, workers busy
    put_minutely(
        stack.aws_client()("cloudwatch"),
        fleet,
        {"QueueDepth": [3.0] * 5, "ActiveWorkers": [2.0] * 5},
        datetime.now(UTC),
    )
    guardrails = run_to_end(client, "gpu_fleet_guardrails", {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug})

    assert victim not in replaced
    assert _sum(stack, fleet, "SpotInterruptionCount", "Sum", began) == 1
    assert guardrails.state == "success", states(client, "gpu_fleet_guardrails", guardrails)
    report = log(client, "gpu_fleet_guardrails", guardrails, "report")
    assert "(no finding" in report, report  # no leak, no orphan: the reclaimed node is simply gone
