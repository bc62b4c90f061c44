"""Termination lifecycle hooks in the emulator (devstack/emulator/lifecycle.py): what moto
stores but never acts on. Each test quotes the AWS sentence it follows."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from devstack.emulator import lifecycle
from tests.devstack.conftest import GROUP
from tests.devstack.test_emulator_refresh import _describe, _v2

HOOK = "bp-drain"


def _hook(aws, timeout: int = 900) -> None:
    aws("autoscaling").put_lifecycle_hook(
        LifecycleHookName=HOOK,
        AutoScalingGroupName=GROUP,
        LifecycleTransition=lifecycle.TERMINATING,
        HeartbeatTimeout=timeout,
        DefaultResult="CONTINUE",
    )


def _states(aws) -> dict[str, str]:
    [found] = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"]
    return {i["InstanceId"]: i["LifecycleState"] for i in found["Instances"]}


def _ec2_state(aws, instance_id: str) -> str:
    [reservation] = aws("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservation["Instances"][0]["State"]["Name"]


def _complete(aws, instance_id: str, result: str = "CONTINUE") -> None:
    aws("autoscaling").complete_lifecycle_action(
        LifecycleHookName=HOOK, AutoScalingGroupName=GROUP, InstanceId=instance_id, LifecycleActionResult=result
    )


def test_a_scale_in_holds_the_instance_in_terminating_wait_until_the_action_completes(aws, group):
    """User guide, lifecycle hooks: a hook "pauses the instance as it is terminated (before
    it is fully terminated)"; the target lifecycle state in IMDS is then ``Terminated``."""
    _hook(aws)
    first, second = sorted(_states(aws))

    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=1)
    held = _states(aws)
    leaving = next(i for i, state in held.items() if state == lifecycle.WAITING)
    staying = ({first, second} - {leaving}).pop()
    waiting_state = (_ec2_state(aws, leaving), lifecycle.target_lifecycle_state(leaving))
    _complete(aws, leaving)

    assert held == {leaving: lifecycle.WAITING, staying: "InService"}
    assert waiting_state == ("running", "Terminated")
    assert lifecycle.target_lifecycle_state(staying) == "InService"
    assert _states(aws) == {staying: "InService"}
    assert _ec2_state(aws, leaving) in ("shutting-down", "terminated")


def test_without_a_hook_a_scale_in_terminates_at_once(aws, group):
    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)

    assert _states(aws) == {}


def test_an_action_nobody_completes_ends_at_the_heartbeat_timeout_and_a_heartbeat_restarts_it(aws, group):
    """Complete a lifecycle action: "If you don't complete the lifecycle action, the lifecycle
    hook goes to the status that you specified for Default result after the timeout period
    ends"; record-lifecycle-action-heartbeat: "restart the timeout period and keep the
    instance in a wait state". A terminating instance is terminated either way."""
    _hook(aws, timeout=2)
    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=GROUP, DesiredCapacity=0)
    leaving = sorted(_states(aws))
    time.sleep(1.2)
    aws("autoscaling").record_lifecycle_action_heartbeat(
        LifecycleHookName=HOOK, AutoScalingGroupName=GROUP, InstanceId=leaving[0]
    )
    time.sleep(1.2)  # past the first deadline, not the restarted one

    after_first_timeout = _states(aws)
    time.sleep(1.2)

    assert after_first_timeout == {leaving[0]: lifecycle.WAITING}
    assert _states(aws) == {}


def test_completing_an_action_that_is_not_waiting_is_refused(aws, group):
    """CompleteLifecycleAction completes "the lifecycle action for the specified token or
    instance": an instance with none waiting has nothing to complete."""
    _hook(aws)
    [instance, *_] = sorted(_states(aws))

    with pytest.raises(ClientError, match=f"No active Lifecycle Action found with instance ID {instance}"):
        _complete(aws, instance)
    with pytest.raises(ClientError, match="LifecycleActionResult must be CONTINUE or ABANDON"):
        _complete(aws, instance, result="RETRY")


def test_an_instance_refresh_replaces_the_next_instance_once_the_one_before_has_gone(aws, group):
    _hook(aws)
    refresh_id = aws("autoscaling").start_instance_refresh(AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group))[
        "InstanceRefreshId"
    ]
    _describe(aws, refresh_id)  # Pending -> InProgress
    _describe(aws, refresh_id)  # the first instance replaced: held by the hook
    [leaving] = [i for i, state in _states(aws).items() if state == lifecycle.WAITING]

    held = [_describe(aws, refresh_id) for _ in range(3)]
    _complete(aws, leaving)
    moving = _describe(aws, refresh_id)

    assert {r["PercentageComplete"] for r in held} == {50}
    assert held[-1]["StatusReason"] == f"Waiting for instance {leaving} to terminate: a lifecycle hook holds it."
    assert moving["StatusReason"].startswith("Replaced instance")
    assert moving["PercentageComplete"] == 100


def test_the_hook_comes_from_the_fleet_template(aws, seeded):
    """AWS::AutoScaling::LifecycleHook: created with its stack, Ref is its name."""
    template = {
        "Resources": {
            "Group": {
                "Type": "AWS::AutoScaling::AutoScalingGroup",
                "Properties": {
                    "AutoScalingGroupName": GROUP,
                    "MinSize": "0",
                    "MaxSize": "2",
                    "DesiredCapacity": "0",
                    "AvailabilityZones": ["us-east-1a"],
                    "LaunchConfigurationName": {"Ref": "Config"},
                },
            },
            "Config": {
                "Type": "AWS::AutoScaling::LaunchConfiguration",
                "Properties": {"ImageId": seeded.base_ami_id, "InstanceType": "g4dn.xlarge"},
            },
            "Drain": {
                "Type": "AWS::AutoScaling::LifecycleHook",
                "Properties": {
                    "AutoScalingGroupName": {"Ref": "Group"},
                    "LifecycleTransition": lifecycle.TERMINATING,
                    "HeartbeatTimeout": 600,
                    "DefaultResult": "CONTINUE",
                },
            },
        }
    }
    aws("cloudformation").create_stack(StackName="hooked", TemplateBody=json.dumps(template))

    [hook] = aws("autoscaling").describe_lifecycle_hooks(AutoScalingGroupName=GROUP)["LifecycleHooks"]
    assert (hook["LifecycleTransition"], hook["HeartbeatTimeout"], hook["DefaultResult"]) == (
        lifecycle.TERMINATING,
        600,
        "CONTINUE",
    )


def test_deleting_the_group_terminates_the_instances_it_held(aws, group):
    """DeleteAutoScalingGroup, ForceDelete: "deletes the group along with all instances
    associated with the group, without waiting for all instances to be terminated"."""
    _hook(aws)
    instances = sorted(_states(aws))

    aws("autoscaling").delete_auto_scaling_group(AutoScalingGroupName=GROUP, ForceDelete=True)

    assert {_ec2_state(aws, i) for i in instances} <= {"shutting-down", "terminated"}
