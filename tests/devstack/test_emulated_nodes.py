"""The emulated fleet (tests/doubles/fleet_nodes.py): every InService node runs the real
node agent against its ComfyUI double, and what they publish is what the rollout verdicts
read - the end-to-end tests and the demo rely on it. Over real HTTP (moto server thread)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.emulator import lifecycle
from devstack.emulator.spot import SPOT_TAG
from gpu_worker.agent.drain import SPOT_MARGIN_SECONDS
from include.naming import platform
from include.naming.fleet import Fleet
from include.rollouts import analysis
from tests.conftest import two_node_group
from tests.doubles import gpu_node
from tests.doubles.fleet_nodes import (
    AGENT_SETTINGS,
    DEGRADED_TAG,
    PROMPT_SECONDS_TAG,
    QUIET_TAG,
    RUSH_TAG,
    EmulatedFleet,
)

FLEET = Fleet("staging", "gpu-default")
BUNDLE = "bundles/b-emulated"
PUBLISH_SECONDS = float(AGENT_SETTINGS["BP_AGENT_PUBLISH_SECONDS"])


@pytest.fixture
def nodes(aws_http, moto_endpoint, baseline):
    """Two InService nodes of the fleet, booted with BUNDLE; their agents, stopped at the end."""
    aws_http("s3").put_object(Bucket=baseline.models_bucket, Key=f"{BUNDLE}/manifest.json", Body=b"{}")
    aws_http("ssm").put_parameter(Name=FLEET.active_bundle, Value=BUNDLE, Type="String", Overwrite=True)
    two_node_group(aws_http, baseline, FLEET.auto_scaling_group, instance_type="g5.xlarge", tags=FLEET.tags)
    gpu_node.install()
    fleet = EmulatedFleet(moto_endpoint)
    yield fleet
    fleet.stop()


def _run(fleet: EmulatedFleet, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        fleet.tick()
        time.sleep(0.5)


def _booted(fleet: EmulatedFleet, timeout: float = 90.0) -> None:
    """Run the nodes until each agent has put its first datums: booting makes its AWS
    clients and a busy machine (CI runs four Airflow stacks beside these tests) can take
    longer than a window for it; a window read before then would find nothing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fleet.tick()
        if len(fleet.nodes) == 2 and all(node.agent.publisher.calls for node in fleet.nodes.values()):
            return
        time.sleep(0.5)
    pytest.fail(f"the nodes had not all published after {timeout:.0f} s: {fleet.totals}")


def _window(aws_http, fleet: EmulatedFleet, seconds: float) -> analysis.Figures:
    """Let the nodes run ``seconds``; what the verdict reads of that window."""
    start = datetime.now(UTC)
    _run(fleet, seconds)
    end = datetime.now(UTC)
    results = aws_http("cloudwatch").get_metric_data(
        MetricDataQueries=analysis.metric_queries(FLEET, start, end), StartTime=start, EndTime=end
    )["MetricDataResults"]
    return analysis.Figures.of({r["Label"]: (r["Values"][0] if r["Values"] else None) for r in results})


def _tag_bundle(aws_http, baseline, degraded: str) -> None:
    aws_http("s3").put_object_tagging(
        Bucket=baseline.models_bucket,
        Key=f"{BUNDLE}/manifest.json",
        Tagging={"TagSet": [{"Key": DEGRADED_TAG, "Value": degraded}]},
    )


def test_each_node_runs_its_agent_and_reports_what_its_bundle_makes_it_do(aws_http, baseline, nodes):
    _booted(nodes)
    healthy = _window(aws_http, nodes, 10)
    _tag_bundle(aws_http, baseline, "errors")
    failing = _window(aws_http, nodes, 10)
    _tag_bundle(aws_http, baseline, "slow")
    slow = _window(aws_http, nodes, 10)
    aws_http("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": FLEET.auto_scaling_group,
                "ResourceType": "auto-scaling-group",
                "Key": QUIET_TAG,
                "Value": "true",
                "PropagateAtLaunch": False,
            }
        ]
    )
    # the last slow prompts' period (its datums carry its start, and CloudWatch reads
    # whole seconds) closes before the quiet window starts
    _run(nodes, PUBLISH_SECONDS + 0.5)
    quiet = _window(aws_http, nodes, 10)

    assert nodes.totals["nodes"] == 2
    assert healthy.jobs >= 2  # a prompt a second on each of 2 nodes, in whole 2-second periods
    assert (healthy.error_rate, healthy.p50_seconds) == (0.0, 4.0)
    # one prompt in three fails: over a few prompts a node, a third give or take one
    assert 20 <= failing.error_rate <= 50
    assert slow.p50_seconds == 12.0
    assert quiet.jobs == 0
    assert quiet.error_rate is None
    by_bundle = aws_http("cloudwatch").list_metrics(
        Namespace=platform.WORKER_METRICS_NAMESPACE, Dimensions=[{"Name": "BundleId", "Value": "b-emulated"}]
    )["Metrics"]
    assert {m["MetricName"] for m in by_bundle} >= {"JobCount", "ErrorRate", "JobProcessingTime", "GPUUtilization"}


def test_a_busy_hour_slows_every_node_alike(aws_http, nodes):
    aws_http("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": FLEET.auto_scaling_group,
                "ResourceType": "auto-scaling-group",
                "Key": RUSH_TAG,
                "Value": "true",
                "PropagateAtLaunch": False,
            }
        ]
    )

    _booted(nodes)
    # prompts report 0.9x, 1x and 1.1x their time in turn: with only two in the window the
    # nearest-rank median is the shorter (10.8 s, seen under make test's load with a 6-s window)
    rush = _window(aws_http, nodes, 10)

    assert rush.jobs >= 3
    assert (rush.error_rate, rush.p50_seconds) == (0.0, 12.0)


def test_a_node_that_leaves_service_stops_its_agent(aws_http, nodes):
    nodes.tick()
    running = set(nodes.nodes)
    aws_http("autoscaling").set_desired_capacity(AutoScalingGroupName=FLEET.auto_scaling_group, DesiredCapacity=1)
    nodes.tick()

    assert len(running) == 2
    assert len(nodes.nodes) == 1
    assert set(nodes.nodes) < running


def test_an_instance_tagged_dev_node_by_hand_runs_no_agent_and_stops_no_other(aws_http, baseline, nodes):
    """Only gpu_dev_node's user-data starts an agent: an instance someone launched with the
    role tag but no dev node name has none, and the fleet's nodes go on."""
    aws_http("ec2").run_instances(
        ImageId=baseline.base_ami_id,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[
            {
                "ResourceType": "instance",
                "Tags": [{"Key": platform.ROLE_TAG, "Value": platform.DEV_NODE_ROLE}, {"Key": "stage", "Value": "dev"}],
            }
        ],
    )

    nodes.tick()

    assert len(nodes.nodes) == 2
    assert nodes.totals["nodes"] == 2


def _tag_group(aws_http, key: str, value: str) -> None:
    aws_http("autoscaling").create_or_update_tags(
        Tags=[
            {
                "ResourceId": FLEET.auto_scaling_group,
                "ResourceType": "auto-scaling-group",
                "Key": key,
                "Value": value,
                "PropagateAtLaunch": False,
            }
        ]
    )


def _in_group(aws_http) -> dict[str, str]:
    [group] = aws_http("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[FLEET.auto_scaling_group])[
        "AutoScalingGroups"
    ]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def test_a_node_a_refresh_replaces_finishes_its_prompt_before_it_goes(aws_http, nodes):
    aws_http("autoscaling").put_lifecycle_hook(
        LifecycleHookName="bp-drain",
        AutoScalingGroupName=FLEET.auto_scaling_group,
        LifecycleTransition=lifecycle.TERMINATING,
        HeartbeatTimeout=120,
        DefaultResult="CONTINUE",
    )
    _tag_group(aws_http, PROMPT_SECONDS_TAG, "4")
    _run(nodes, 1)  # each node starts a 4-second prompt
    # busy nodes are protected from scale-in: a refresh is what replaces them
    autoscaling = aws_http("autoscaling")
    refresh = autoscaling.start_instance_refresh(
        AutoScalingGroupName=FLEET.auto_scaling_group,
        Preferences={"ScaleInProtectedInstances": "Refresh", "MinHealthyPercentage": 50},
    )["InstanceRefreshId"]
    for _ in range(2):  # Pending -> InProgress -> the first node replaced
        autoscaling.describe_instance_refreshes(
            AutoScalingGroupName=FLEET.auto_scaling_group, InstanceRefreshIds=[refresh]
        )
    [leaving] = [i for i, state in _in_group(aws_http).items() if state == lifecycle.WAITING]

    _run(nodes, 1)
    held = (_in_group(aws_http)[leaving], nodes.nodes[leaving].agent.drain.draining)
    _run(nodes, 5)

    assert held == (lifecycle.WAITING, True)
    assert leaving not in _in_group(aws_http)  # the agent completed the lifecycle action
    assert (nodes.totals["drains"], nodes.totals["abandoned_jobs"]) == (1, 0)
    # `held` shows it waited for the prompt; how long depends on when, in the prompt's
    # 4 seconds, a busy machine let the agent see the notice and tick again (CI measured
    # 1.7 s, make test's niced unit tests 6.2 s): far under the hook's 120-s timeout
    assert 0 < nodes.totals["drain_seconds_max"] <= 15


def test_a_spot_notice_drains_the_node_and_ec2_takes_it_at_the_planted_time(aws_http, nodes):
    nodes.tick()
    victim = sorted(nodes.nodes)[0]
    at = (datetime.now(UTC) + timedelta(seconds=SPOT_MARGIN_SECONDS + 3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    aws_http("ec2").create_tags(Resources=[victim], Tags=[{"Key": SPOT_TAG, "Value": at}])

    _run(nodes, 1)
    draining = nodes.nodes[victim].agent.drain.draining or nodes.nodes[victim].agent.drain.outcome is not None
    _run(nodes, SPOT_MARGIN_SECONDS + 4)  # past the planted time

    assert draining
    assert nodes.totals["spot_notices"] == 1
    assert victim not in _in_group(aws_http)
    assert len(_in_group(aws_http)) == 2  # the group replaced it
