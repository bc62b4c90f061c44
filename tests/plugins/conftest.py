"""The plugins are tested against moto over real HTTP (the ``moto_endpoint``,
``aws_http`` and ``baseline`` fixtures of tests/conftest.py): here, running a trigger or
a deferrable operator to its end in the test's own process, and the fleets they act on."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import pytest


def run_trigger(trigger) -> dict[str, Any]:
    """Run a trigger to its first event in this test's event loop; return the payload."""

    async def first_event():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(first_event())


def resume(operator, context: dict | None = None):
    """Execute a deferrable operator: run its trigger, then resume it with the event.

    Returns what the resumed method returns (given the deferral's kwargs). Follows
    chained deferrals.
    """
    from airflow.sdk.exceptions import TaskDeferred

    context = context or {}
    try:
        return operator.execute(context)
    except TaskDeferred as deferred:
        while True:
            event = run_trigger(deferred.trigger)
            try:
                return getattr(operator, deferred.method_name)(context, event, **(deferred.kwargs or {}))
            except TaskDeferred as again:
                deferred = again


@dataclass
class Fleet:
    group: str
    template_id: str
    base_image: str

    def instance_ids(self, client) -> list[str]:
        group = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[self.group])
        return [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]

    def images_of_instances(self, client) -> set[str]:
        ids = self.instance_ids(client)
        if not ids:
            return set()
        reservations = client("ec2").describe_instances(InstanceIds=ids)["Reservations"]
        return {i["ImageId"] for r in reservations for i in r["Instances"]}

    def new_version(self, client, name: str = "bp-gpu-bundle-2") -> tuple[str, str]:
        """Register a new image and a launch template version using it; (image, version)."""
        ec2 = client("ec2")
        image = ec2.register_image(Name=name, RootDeviceName="/dev/sda1", BlockDeviceMappings=[])["ImageId"]
        version = ec2.create_launch_template_version(
            LaunchTemplateId=self.template_id, SourceVersion="1", LaunchTemplateData={"ImageId": image}
        )["LaunchTemplateVersion"]["VersionNumber"]
        return image, str(version)


@pytest.fixture
def fleet(aws_http, baseline) -> Fleet:
    """asg-staging-gpu-default with 2 running instances on launch template version 1."""
    ec2, autoscaling = aws_http("ec2"), aws_http("autoscaling")
    template = ec2.create_launch_template(
        LaunchTemplateName="bp-staging-gpu-default",
        LaunchTemplateData={"ImageId": baseline.base_ami_id, "InstanceType": "g4dn.xlarge"},
    )["LaunchTemplate"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-staging-gpu-default",
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
        VPCZoneIdentifier=",".join(baseline.private_subnet_ids),
    )
    return Fleet("asg-staging-gpu-default", template["LaunchTemplateId"], baseline.base_ami_id)


def dump(value: Any) -> str:
    return json.dumps(value, default=str, indent=2)
