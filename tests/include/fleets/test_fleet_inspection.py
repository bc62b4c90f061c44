"""The guardrails' inspection against the emulated account: each situation planted the
way AWS would show it (metrics put with PutMetricData, instances protected by the ASG
API, a lock left by a run that ended), and a healthy fleet that gives no finding."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from botocore.exceptions import ClientError

from devstack.fleet_metrics import put_minutely
from include.fleets import inspection
from include.fleets.lock import Holder
from include.naming.fleet import Fleet

FLEET = Fleet("staging", "gpu-default")
PRICES = {"g4dn.xlarge": Decimal("0.2256"), "g5.xlarge": Decimal("0.4024")}


@pytest.fixture
def fleet(aws, seeded):
    """The fleet's group as gpu-fleet.yaml makes it, with two instances running."""
    ec2, autoscaling = aws("ec2"), aws("autoscaling")
    template = ec2.create_launch_template(
        LaunchTemplateName="lt", LaunchTemplateData={"ImageId": seeded.base_ami_id, "InstanceType": "g4dn.xlarge"}
    )["LaunchTemplate"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=FLEET.auto_scaling_group,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"]},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=2,
        VPCZoneIdentifier=seeded.private_subnet_ids[0],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in FLEET.tags.items()],
    )
    return aws


def _put(aws, metric: str, values: list[float], now: datetime) -> None:
    put_minutely(aws("cloudwatch"), FLEET, {metric: values}, now)


def _inspect(aws, now, states=None, budgets=None):
    return inspection.inspect_fleets(
        aws,
        [FLEET],
        ["staging"],
        now=now,
        prices=PRICES,
        run_state=lambda dag_id, run_id: (states or {}).get(run_id, "gone"),
        daily_budgets=budgets or {},
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(second=0, microsecond=0)


def test_a_busy_fleet_gives_no_finding(fleet):
    now = _now()
    _put(fleet, "QueueDepth", [3.0] * 40, now)
    _put(fleet, "ActiveWorkers", [2.0] * 40, now)

    assert _inspect(fleet, now) == []


def test_an_idle_fleet_with_instances_and_protection_is_a_leak(fleet):
    now = _now()
    group = fleet("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[FLEET.auto_scaling_group])
    protected = group["AutoScalingGroups"][0]["Instances"][0]["InstanceId"]
    fleet("autoscaling").set_instance_protection(
        AutoScalingGroupName=FLEET.auto_scaling_group, InstanceIds=[protected], ProtectedFromScaleIn=True
    )
    _put(fleet, "QueueDepth", [4.0] * 5 + [0.0] * 60, now)  # empty for 59 minutes
    _put(fleet, "ActiveWorkers", [2.0] * 5 + [0.0] * 60, now)

    found = {f.check: f for f in _inspect(fleet, now, budgets={"staging": Decimal("10")})}

    leak = found["scale-to-zero leak"]
    assert leak.remediation == "scale_to_zero"
    assert leak.dollars_per_hour == Decimal("0.4512")  # two g4dn.xlarge
    assert "QueueDepth has been 0 for 59 min (scale_to_zero_minutes 15)" in leak.summary
    assert found["stuck scale-in protection"].details["instances"] == [protected]
    assert found["capacity without work"].summary == "desired capacity 2 with QueueDepth 0 and ActiveWorkers 0"
    assert found["spend rate"].severity == "critical"  # $10.83/day against a $10 budget


def test_missing_metrics_are_reported_as_no_data(fleet):
    found = _inspect(fleet, _now())

    assert [(f.check, f.remediation) for f in found] == [("no data", None), ("no data", None)]


def test_a_lock_of_an_ended_run_an_image_gone_and_an_orphan(fleet, seeded):
    now = _now()
    _put(fleet, "QueueDepth", [1.0] * 30, now)
    _put(fleet, "ActiveWorkers", [1.0] * 30, now)
    fleet("ssm").put_parameter(
        Name=FLEET.lock, Value=Holder.new("gpu_bundle_rollout", "r-dead", "rollout").value(), Type="String"
    )
    fleet("ec2").deregister_image(ImageId=seeded.base_ami_id)
    orphan = fleet("ec2").run_instances(
        ImageId="ami-12c6146b",
        InstanceType="g5.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "stage", "Value": "staging"}]}],
    )["Instances"][0]["InstanceId"]

    found = {f.check: f for f in _inspect(fleet, now, states={"r-dead": "failed"})}

    assert found["stale lock"].remediation == "release_lock"
    assert "no longer exists" in found["AMI pointer to a missing image"].summary
    assert found["orphan GPU instance"].summary.startswith(f"{orphan} (g5.xlarge) runs in staging")
    assert _inspect(fleet, now, states={"r-dead": "running"})[0].check != "stale lock"


def test_one_fleets_error_is_its_finding_and_the_others_are_still_checked(fleet, monkeypatch):
    broken = Fleet("staging", "broken")

    def failing(service):
        client = fleet(service)
        if service != "autoscaling":
            return client

        class Throttled:
            def describe_auto_scaling_groups(self, AutoScalingGroupNames):
                if AutoScalingGroupNames == [broken.auto_scaling_group]:
                    raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "Describe")
                return client.describe_auto_scaling_groups(AutoScalingGroupNames=AutoScalingGroupNames)

            def get_paginator(self, name):
                return client.get_paginator(name)

        return Throttled()

    found = inspection.inspect_fleets(
        failing, [broken, FLEET], ["staging"], now=_now(), prices=PRICES, run_state=lambda *_: "gone", daily_budgets={}
    )

    assert (found[0].scope, found[0].check) == ("staging/broken", "inspection failed")
    assert "Rate exceeded" in found[0].summary
    assert {f.scope for f in found[1:]} == {"staging/gpu-default"}  # checked: its metrics are missing
