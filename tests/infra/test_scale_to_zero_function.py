"""The scale-to-zero function on the emulator: an alarm for this stage's fleet sets that
fleet's desired capacity to 0; nothing else is touched."""

from __future__ import annotations

import importlib.util
import json

import pytest

from include.fleets import provision as fleet_provision
from include.naming import platform

GROUPS = {
    # name: (stage tag, fleet tag, desired capacity)
    "asg-staging-gpu-a": ("staging", "gpu-a", 2),
    "asg-staging-gpu-b": ("staging", "gpu-b", 1),
    "asg-production-gpu-a": ("production", "gpu-a", 1),
}


@pytest.fixture
def handler(monkeypatch, shared_template):
    """The function as Lambda loads it, with the environment the template gives it."""
    spec = importlib.util.spec_from_file_location("scale_to_zero", fleet_provision.FUNCTION_SOURCE / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    environment = shared_template["Resources"]["ScaleToZeroFunction"]["Properties"]["Environment"]["Variables"]
    for key, value in environment.items():
        monkeypatch.setenv(key, "staging" if key == "FLEET_STAGE" else value)
    return module


@pytest.fixture
def groups(aws):
    ec2, autoscaling = aws("ec2"), aws("autoscaling")
    image = ec2.register_image(Name="bp-gpu", RootDeviceName="/dev/sda1", BlockDeviceMappings=[])["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName="bp-gpu", LaunchTemplateData={"ImageId": image, "InstanceType": "g5.xlarge"}
    )["LaunchTemplate"]
    for name, (stage, fleet, desired) in GROUPS.items():
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=name,
            MinSize=0,
            MaxSize=4,
            DesiredCapacity=desired,
            LaunchTemplate={"LaunchTemplateId": template["LaunchTemplateId"], "Version": "1"},
            AvailabilityZones=["us-east-1a"],
            Tags=[
                {"Key": platform.STAGE_TAG, "Value": stage, "PropagateAtLaunch": True},
                {"Key": platform.FLEET_TAG, "Value": fleet, "PropagateAtLaunch": True},
            ],
        )
    return autoscaling


def _sns_event(fleet: str, stage: str, state: str = "ALARM") -> dict:
    """What SNS delivers for a CloudWatch alarm (dimensions as name/value, lowercase)."""
    message = {
        "AlarmName": f"{stage}-{fleet}-queue-empty",
        "NewStateValue": state,
        "OldStateValue": "OK",
        "Trigger": {
            "MetricName": "QueueDepth",
            "Namespace": "ComfyUI/Workers",
            "Dimensions": [{"value": fleet, "name": "FleetSlug"}, {"value": stage, "name": "Stage"}],
        },
    }
    return {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(message)}}]}


def _desired(autoscaling) -> dict[str, int]:
    return {
        g["AutoScalingGroupName"]: g["DesiredCapacity"]
        for g in autoscaling.describe_auto_scaling_groups()["AutoScalingGroups"]
    }


def test_an_alarm_for_this_stages_fleet_scales_that_fleet_to_zero(handler, groups):
    group = groups.describe_auto_scaling_groups(AutoScalingGroupNames=["asg-staging-gpu-a"])["AutoScalingGroups"][0]
    stuck = group["Instances"][0]["InstanceId"]
    groups.set_instance_protection(
        AutoScalingGroupName="asg-staging-gpu-a", InstanceIds=[stuck], ProtectedFromScaleIn=True
    )

    [outcome] = handler.handle(_sns_event("gpu-a", "staging"), None, groups)

    assert outcome["action"] == "scaled_to_zero"
    assert outcome["previous_desired"] == 2
    assert outcome["unprotected"] == [stuck]
    assert _desired(groups) == {"asg-staging-gpu-a": 0, "asg-staging-gpu-b": 1, "asg-production-gpu-a": 1}


def test_an_alarm_for_another_stages_fleet_is_left_alone(handler, groups):
    [outcome] = handler.handle(_sns_event("gpu-a", "production"), None, groups)

    assert outcome["action"] == "ignored"
    assert outcome["reason"] == "alarm is for stage 'production', this is 'staging'"
    assert _desired(groups) == {name: desired for name, (_, _, desired) in GROUPS.items()}


def test_an_unknown_fleet_and_an_ok_transition_change_nothing(handler, groups):
    outcomes = handler.handle(_sns_event("gpu-z", "staging"), None, groups)
    outcomes += handler.handle(_sns_event("gpu-a", "staging", state="OK"), None, groups)

    assert [o["action"] for o in outcomes] == ["ignored", "ignored"]
    assert "no Auto Scaling group tagged as fleet staging/gpu-z" in outcomes[0]["reason"]
    assert _desired(groups) == {name: desired for name, (_, _, desired) in GROUPS.items()}


def test_a_group_named_like_a_fleet_but_not_tagged_as_one_is_left_alone(handler, groups):
    """The function finds fleets by their tags, never by a name it guesses."""
    groups.delete_tags(
        Tags=[{"ResourceId": "asg-staging-gpu-b", "ResourceType": "auto-scaling-group", "Key": platform.STAGE_TAG}]
    )

    [outcome] = handler.handle(_sns_event("gpu-b", "staging"), None, groups)

    assert outcome["action"] == "ignored"
    assert _desired(groups)["asg-staging-gpu-b"] == 1


def test_a_fleet_already_at_zero_is_a_no_op(handler, groups):
    handler.handle(_sns_event("gpu-b", "staging"), None, groups)

    [again] = handler.handle(_sns_event("gpu-b", "staging"), None, groups)

    assert again["action"] == "none"
    assert again["reason"] == "already at 0"


def test_the_template_gives_the_function_the_projects_tag_keys(shared_template):
    environment = shared_template["Resources"]["ScaleToZeroFunction"]["Properties"]["Environment"]["Variables"]
    assert environment["STAGE_TAG"] == platform.STAGE_TAG
    assert environment["FLEET_TAG"] == platform.FLEET_TAG
