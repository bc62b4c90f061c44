"""What the node agent's tests share: a clock the test moves, the ComfyUI double, a fleet
group with one node in the emulator."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from gpu_worker.agent.gpu import Gpus
from gpu_worker.agent.node import Agent, AgentConfig
from gpu_worker.metrics import NAMESPACE
from tests.doubles.comfyui import ComfyUIServer
from tests.doubles.nvml import FakeNvml

GROUP = "asg-staging-gpu-default"
FLEET = [{"Name": "Stage", "Value": "staging"}, {"Name": "FleetSlug", "Value": "gpu-default"}]


class Clock:
    """The agent's time, moved by the test; it starts now, or ``ago`` seconds before
    (ComfyUI's timestamps are real: a prompt never ends before the agent started)."""

    def __init__(self, ago: float = 0.0) -> None:
        self.now = time.time() - ago

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def comfyui():
    server = ComfyUIServer()
    yield server
    server.stop()


def one_node_group(client, name: str = GROUP) -> str:
    """A fleet's group with one InService node in the emulator (what SetInstanceProtection
    needs); the node's instance id."""
    ec2 = client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"lt-{name}", LaunchTemplateData={"ImageId": image, "InstanceType": "g5.xlarge"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling = client("autoscaling")
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=1,
        AvailabilityZones=["us-east-1a"],
    )
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]
    return group["Instances"][0]["InstanceId"]


@pytest.fixture
def fleet_group(aws):
    return one_node_group(aws)


def make_agent(comfyui, aws, instance_id: str, clock: Clock | None, tmp_path, metadata=None, **settings) -> Agent:
    """A fleet node's agent on the bundle ``b-2026-12``; ``clock`` None: real time;
    ``metadata``: its IMDS (the drain's notices), none by default."""
    config = AgentConfig(
        stage="staging",
        fleet_slug="gpu-default",
        auto_scaling_group=GROUP,
        comfyui_url=comfyui.url(instance_id),
        bundle_state_dir=tmp_path,
        **settings,
    )
    (tmp_path / ".active_bundle_id").write_text("b-2026-12\n")
    gpus = Gpus(FakeNvml(utilization=60.0))
    return Agent(config, instance_id=instance_id, client=aws, gpus=gpus, clock=clock or time.time, metadata=metadata)


def protected(aws, instance_id: str) -> bool:
    answer = aws("autoscaling").describe_auto_scaling_instances(InstanceIds=[instance_id])
    return answer["AutoScalingInstances"][0]["ProtectedFromScaleIn"]


#: How far past the real time :func:`statistic` reads: the tests' clocks run ahead of it
#: (a drain deadline is 5 minutes), and the window's end must lie past their last minute.
#: With 5 minutes, a drain test whose clock started in a minute's first second stamped its
#: last minute at the window's very end, and the datum was left out. One window of an
#: hour still holds every datum, from 20 minutes back (``Clock(ago=...)``) on.
READ_AHEAD = timedelta(minutes=15)


def statistic(aws, name: str, statistic: str, dimensions=FLEET) -> list[float]:
    end = datetime.now(UTC) + READ_AHEAD
    answer = aws("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": "m",
                "MetricStat": {
                    "Metric": {"Namespace": NAMESPACE, "MetricName": name, "Dimensions": dimensions},
                    "Period": 3600,
                    "Stat": statistic,
                },
            }
        ],
        StartTime=end - timedelta(hours=2),
        EndTime=end,
    )
    return answer["MetricDataResults"][0]["Values"]
