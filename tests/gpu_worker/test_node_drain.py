"""The node agent drains a leaving fleet node (gpu_worker/agent/drain.py): against the
emulator's termination hook (moto in-process, devstack/emulator/lifecycle.py), the IMDS
double serving the target lifecycle state and Spot notices live, and the ComfyUI double."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from devstack.emulator import lifecycle
from gpu_worker.agent.imds import InstanceMetadata
from gpu_worker.agent.node import AgentConfig
from tests.doubles.imds import MetadataServer
from tests.gpu_worker.conftest import FLEET, GROUP, Clock, make_agent, protected, statistic

HOOK = "bp-drain"
DRAIN_TIMEOUT = 300


@pytest.fixture
def spot_notices():
    """Instance id -> the instance-action notice EC2 planned for it."""
    return {}


@pytest.fixture
def metadata(spot_notices):
    server = MetadataServer(
        live={
            "autoscaling/target-lifecycle-state": lifecycle.target_lifecycle_state,
            "spot/instance-action": spot_notices.get,
        }
    )
    yield server
    server.stop()  # (again, where a test stopped it: a no-op)


@pytest.fixture
def hooked_group(aws, fleet_group):
    aws("autoscaling").put_lifecycle_hook(
        LifecycleHookName=HOOK,
        AutoScalingGroupName=GROUP,
        LifecycleTransition=lifecycle.TERMINATING,
        HeartbeatTimeout=DRAIN_TIMEOUT + 60,
        DefaultResult="CONTINUE",
    )
    return fleet_group


def _agent(comfyui, aws, instance_id, clock, tmp_path, metadata, hook=HOOK):
    imds = InstanceMetadata(metadata.add(instance_id))
    return make_agent(
        comfyui,
        aws,
        instance_id,
        clock,
        tmp_path,
        metadata=imds,
        lifecycle_hook=hook,
        drain_timeout_seconds=DRAIN_TIMEOUT,
        drain_file=tmp_path / "run" / "drain",
    )


def _group_states(aws) -> dict[str, str]:
    [group] = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    return {i["InstanceId"]: i["LifecycleState"] for i in group["Instances"]}


def test_a_terminated_node_finishes_its_prompt_then_lets_the_group_go_on(
    comfyui, aws, hooked_group, metadata, tmp_path
):
    clock = Clock()
    node = comfyui.node(hooked_group)
    agent = _agent(comfyui, aws, hooked_group, clock, tmp_path, metadata)
    node.submit()
    node.start()
    agent.sample()  # busy: protected from scale-in
    aws("autoscaling").set_instance_protection(
        InstanceIds=[hooked_group], AutoScalingGroupName=GROUP, ProtectedFromScaleIn=False
    )  # (the DAG asked the group for fewer nodes and picked this one)
    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)

    clock.advance(5)
    agent.sample()
    while_running = (_group_states(aws), json.loads((tmp_path / "run" / "drain").read_text())["reason"])
    clock.advance(40)
    node.finish(seconds=45.0)
    agent.sample()

    assert while_running == ({hooked_group: lifecycle.WAITING}, "the Auto Scaling group is terminating the node")
    assert _group_states(aws) == {}  # CompleteLifecycleAction: the group terminated it
    assert agent.drain.outcome.seconds == 40.0
    assert statistic(aws, "DrainSeconds", "Maximum") == [40.0]
    assert statistic(aws, "DrainAbandonedJobs", "Sum") == [0.0]
    assert statistic(aws, "JobCount", "Sum") == [1.0]  # the prompt it finished went out with it


def test_a_prompt_that_never_ends_is_left_at_the_deadline_and_counted(comfyui, aws, hooked_group, metadata, tmp_path):
    clock = Clock()
    node = comfyui.node(hooked_group)
    agent = _agent(comfyui, aws, hooked_group, clock, tmp_path, metadata)
    node.submit()
    node.start()
    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)
    agent.sample()
    clock.advance(DRAIN_TIMEOUT - 1)
    agent.sample()
    before_deadline = _group_states(aws)
    clock.advance(1)
    agent.sample()

    assert before_deadline == {hooked_group: lifecycle.WAITING}
    assert _group_states(aws) == {}
    assert (agent.drain.outcome.seconds, agent.drain.outcome.abandoned) == (DRAIN_TIMEOUT, 1)
    assert statistic(aws, "DrainAbandonedJobs", "Sum") == [1.0]


def test_a_spot_notice_drains_before_the_two_minutes_and_is_counted(
    comfyui, aws, fleet_group, metadata, spot_notices, tmp_path
):
    clock = Clock()
    node = comfyui.node(fleet_group)
    agent = _agent(comfyui, aws, fleet_group, clock, tmp_path, metadata)
    node.submit()
    node.start()
    agent.sample()
    protected_while_busy = protected(aws, fleet_group)
    at = datetime.fromtimestamp(clock.now, UTC) + timedelta(minutes=2)
    spot_notices[fleet_group] = json.dumps({"action": "terminate", "time": at.strftime("%Y-%m-%dT%H:%M:%SZ")})

    clock.advance(2)
    agent.sample()
    draining = (agent.drain.draining, protected(aws, fleet_group))
    clock.advance(110)  # the two minutes less the agent's margin: the prompt is still running
    agent.sample()

    assert protected_while_busy is True
    assert draining == (True, False)  # a node on its way out holds no protection
    assert agent.drain.outcome.abandoned == 1
    by_bundle = [*FLEET, {"Name": "BundleId", "Value": "b-2026-12"}]
    assert statistic(aws, "SpotInterruptionCount", "Sum") == [1.0]
    assert statistic(aws, "SpotInterruptionCount", "Sum", by_bundle) == [1.0]
    assert _group_states(aws) == {fleet_group: "InService"}  # no lifecycle action: EC2 takes it


def test_without_a_hook_the_group_is_not_held_and_nothing_drains(comfyui, aws, fleet_group, metadata, tmp_path):
    clock = Clock()
    agent = _agent(comfyui, aws, fleet_group, clock, tmp_path, metadata, hook=None)
    comfyui.node(fleet_group).submit()
    agent.sample()

    assert agent.drain.draining is False
    assert not (tmp_path / "run" / "drain").exists()


def test_a_drain_timeout_out_of_range_is_refused_by_name():
    with pytest.raises(ValueError, match="BP_DRAIN_TIMEOUT_SECONDS must be above 0 and at most 7200"):
        AgentConfig.from_env(
            {
                "BP_FLEET_STAGE": "staging",
                "BP_FLEET_SLUG": "gpu-default",
                "BP_AUTO_SCALING_GROUP": GROUP,
                "BP_DRAIN_TIMEOUT_SECONDS": "9000",
            }
        )


def test_an_unreachable_metadata_service_is_one_warning_and_no_drain(
    comfyui, aws, fleet_group, metadata, tmp_path, caplog
):
    clock = Clock()
    agent = _agent(comfyui, aws, fleet_group, clock, tmp_path, metadata)
    metadata.stop()

    for _ in range(3):
        agent.sample()
        clock.advance(5)

    assert agent.drain.draining is False
    assert agent.drain.problem is not None
    assert sum("can't read the instance's notices" in r.getMessage() for r in caplog.records) == 1
