"""The emulator extension gives moto AWS's documented behaviour for instance refreshes. Each test
quotes the sentence of the AWS API reference it follows."""

from __future__ import annotations

import time

import pytest
from botocore.exceptions import ClientError

from devstack.emulator import autoscaling as emulated_asg
from tests.devstack.conftest import GROUP


def _v2(group):
    return {"LaunchTemplate": {"LaunchTemplateId": group["template"], "Version": "2"}}


def _describe(aws, refresh_id=None):
    kwargs = {"AutoScalingGroupName": GROUP, **({"InstanceRefreshIds": [refresh_id]} if refresh_id else {})}
    return aws("autoscaling").describe_instance_refreshes(**kwargs)["InstanceRefreshes"][0]


def _until_done(aws, refresh_id, limit=20):
    for _ in range(limit):
        refresh = _describe(aws, refresh_id)
        if refresh["Status"] not in emulated_asg.ACTIVE:
            return refresh
    raise AssertionError("the refresh never ended")


def _images(aws):
    ids = [
        i["InstanceId"]
        for i in aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0][
            "Instances"
        ]
    ]
    reservations = aws("ec2").describe_instances(InstanceIds=ids)["Reservations"]
    return {i["ImageId"] for r in reservations for i in r["Instances"]}


def test_start_returns_an_id_and_the_refresh_replaces_instances(aws, group):
    """StartInstanceRefresh: "If successful, the request's response contains a unique ID
    that you can use to track the progress of the instance refresh." InstanceRefresh:
    InstancesToUpdate is "The number of instances remaining to update before the
    instance refresh is complete." """
    refresh_id = aws("autoscaling").start_instance_refresh(AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group))[
        "InstanceRefreshId"
    ]

    assert _describe(aws, refresh_id)["Status"] == "InProgress"
    seen = [(_describe(aws, refresh_id)["PercentageComplete"], _describe(aws, refresh_id)["InstancesToUpdate"])]
    final = _until_done(aws, refresh_id)

    assert (final["Status"], final["PercentageComplete"], final["InstancesToUpdate"]) == ("Successful", 100, 0)
    assert seen[0][1] < 2
    assert _images(aws) == {group["new_image"]}


def test_a_second_refresh_is_refused_while_one_is_active(aws, group):
    """InstanceRefreshInProgressFault: "The request failed because an active instance
    refresh already exists for the specified Auto Scaling group." """
    autoscaling = aws("autoscaling")
    autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP)

    with pytest.raises(ClientError) as refused:
        autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP)

    assert refused.value.response["Error"]["Code"] == "InstanceRefreshInProgress"


def test_cancel_keeps_what_was_replaced(aws, group):
    """CancelInstanceRefresh: "When you cancel an instance refresh, this does not roll back
    any changes that it made." The user guide: "The status of the instance refresh is set
    to Cancelling. After the cancellation is complete, the status of the instance refresh
    is set to Cancelled." """
    autoscaling = aws("autoscaling")
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group))[
        "InstanceRefreshId"
    ]
    _describe(aws)  # InProgress
    _describe(aws)  # one instance replaced

    autoscaling.cancel_instance_refresh(AutoScalingGroupName=GROUP)

    assert _describe(aws, refresh_id)["Status"] == "Cancelled"
    assert _images(aws) == {group["old_image"], group["new_image"]}


def test_cancel_without_an_active_refresh_is_an_error(aws, group):
    """CancelInstanceRefresh: "If an instance refresh or rollback is not in progress, an
    ActiveInstanceRefreshNotFound error occurs." """
    with pytest.raises(ClientError) as refused:
        aws("autoscaling").cancel_instance_refresh(AutoScalingGroupName=GROUP)

    assert refused.value.response["Error"]["Code"] == "ActiveInstanceRefreshNotFound"


def test_rollback_restores_the_previous_configuration(aws, group):
    """RollbackInstanceRefresh: "Amazon EC2 Auto Scaling replaces any instances that were
    replaced during the instance refresh. This restores your Auto Scaling group to the
    configuration that it was using before the start of the instance refresh." """
    autoscaling = aws("autoscaling")
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group))[
        "InstanceRefreshId"
    ]
    _describe(aws)
    _describe(aws)

    autoscaling.rollback_instance_refresh(AutoScalingGroupName=GROUP)

    assert _until_done(aws, refresh_id)["Status"] == "RollbackSuccessful"
    assert _images(aws) == {group["old_image"]}
    spec = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0]
    assert spec["LaunchTemplate"]["Version"] == "1"


@pytest.mark.parametrize(
    ("setup", "why"),
    [
        ("no desired configuration", "There is no desired configuration specified"),
        ("ssm image", "Systems Manager parameter instead of an AMI ID"),
        ("latest version", "$Latest or $Default version"),
    ],
)
def test_rollback_is_refused_where_aws_does_not_support_it(aws, group, setup, why):
    """RollbackInstanceRefresh: "A rollback is not supported in the following situations:
    There is no desired configuration specified for the instance refresh. The Auto Scaling
    group has a launch template that uses an AWS Systems Manager parameter instead of an
    AMI ID for the ImageId property. The Auto Scaling group uses the launch template's
    $Latest or $Default version." """
    autoscaling, ec2 = aws("autoscaling"), aws("ec2")
    desired = _v2(group)
    if setup == "ssm image":
        template = ec2.create_launch_template(
            LaunchTemplateName="ssm-lt",
            LaunchTemplateData={"ImageId": "resolve:ssm:/bp/ami/fleets/staging/gpu-default"},
        )["LaunchTemplate"]["LaunchTemplateId"]
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateId": template, "Version": "1"}
        )
    if setup == "latest version":
        autoscaling.update_auto_scaling_group(
            AutoScalingGroupName=GROUP, LaunchTemplate={"LaunchTemplateId": group["template"], "Version": "$Latest"}
        )
    autoscaling.start_instance_refresh(
        AutoScalingGroupName=GROUP, **({} if setup == "no desired configuration" else {"DesiredConfiguration": desired})
    )

    with pytest.raises(ClientError) as refused:
        autoscaling.rollback_instance_refresh(AutoScalingGroupName=GROUP)

    assert refused.value.response["Error"]["Code"] == "IrreversibleInstanceRefresh"
    assert why in refused.value.response["Error"]["Message"]


def test_a_failure_with_auto_rollback_rolls_back(aws, group):
    """StartInstanceRefresh: "If you enable auto rollback, your Auto Scaling group will be
    rolled back automatically when the instance refresh fails." """
    refresh_id = aws("autoscaling").start_instance_refresh(
        AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group), Preferences={"AutoRollback": True}
    )["InstanceRefreshId"]
    emulated_asg.plan_failure(GROUP, at_percentage=50, reason="Instance failed ELB health checks.")

    final = _until_done(aws, refresh_id)

    assert final["Status"] == "RollbackSuccessful"
    assert final["StatusReason"].startswith("Instance failed ELB health checks.")
    assert _images(aws) == {group["old_image"]}


def test_a_failure_without_auto_rollback_ends_failed_with_its_reason(aws, group):
    """StartInstanceRefresh: "An instance refresh might fail for several reasons, such as
    EC2 launch failures, misconfigured health checks..." (status Failed)."""
    refresh_id = aws("autoscaling").start_instance_refresh(AutoScalingGroupName=GROUP)["InstanceRefreshId"]
    emulated_asg.plan_failure(GROUP, reason="EC2 launch failure: InsufficientInstanceCapacity")

    final = _until_done(aws, refresh_id)

    assert (final["Status"], final["StatusReason"]) == ("Failed", "EC2 launch failure: InsufficientInstanceCapacity")


def test_checkpoints_pause_the_refresh_for_the_checkpoint_delay(aws, group):
    """RefreshPreferences.CheckpointPercentages: "(Optional) Threshold values for each
    checkpoint in ascending order." CheckpointDelay: "The amount of time, in seconds, to
    wait after a checkpoint before continuing." """
    refresh_id = aws("autoscaling").start_instance_refresh(
        AutoScalingGroupName=GROUP, Preferences={"CheckpointPercentages": [50, 100], "CheckpointDelay": 2}
    )["InstanceRefreshId"]

    paused = [_describe(aws, refresh_id) for _ in range(6)]
    time.sleep(2.1)
    after = [_describe(aws, refresh_id) for _ in range(4)]

    assert "Checkpoint 50% reached: waiting the checkpoint delay (2 s)." in [r["StatusReason"] for r in paused]
    assert {(r["Status"], r["PercentageComplete"]) for r in paused[3:]} == {("InProgress", 50)}
    assert after[-1]["Status"] == "Successful"


def test_a_checkpoint_without_a_delay_pauses_an_hour(aws, group):
    """CheckpointDelay: "If you specify a value for CheckpointPercentages and not for
    CheckpointDelay, the CheckpointDelay defaults to 3600 (1 hour)." """
    refresh_id = aws("autoscaling").start_instance_refresh(
        AutoScalingGroupName=GROUP, Preferences={"CheckpointPercentages": [50, 100]}
    )["InstanceRefreshId"]

    reasons = [_describe(aws, refresh_id)["StatusReason"] for _ in range(8)]

    assert reasons[-1] == "Checkpoint 50% reached: waiting the checkpoint delay (3600 s)."


@pytest.mark.parametrize(("choice", "replaced"), [("Wait", 0), ("Ignore", 1), ("Refresh", 2)])
def test_protected_instances_follow_scale_in_protected_instances(aws, group, choice, replaced):
    """RefreshPreferences.ScaleInProtectedInstances: "Refresh: Amazon EC2 Auto Scaling
    replaces instances that are protected from scale in. Ignore: Amazon EC2 Auto Scaling
    ignores instances that are protected from scale in and continues to replace instances
    that are not protected. Wait (default): Amazon EC2 Auto Scaling waits one hour for
    you to remove scale-in protection." """
    autoscaling = aws("autoscaling")
    first = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[GROUP])["AutoScalingGroups"][0][
        "Instances"
    ][0]
    autoscaling.set_instance_protection(
        AutoScalingGroupName=GROUP, InstanceIds=[first["InstanceId"]], ProtectedFromScaleIn=True
    )
    refresh_id = autoscaling.start_instance_refresh(
        AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group), Preferences={"ScaleInProtectedInstances": choice}
    )["InstanceRefreshId"]

    last = [_describe(aws, refresh_id) for _ in range(6)][-1]

    images = _images(aws)
    if choice == "Wait":
        assert last["Status"] == "InProgress"
        assert f"Waiting for instance {first['InstanceId']}: it is protected from scale in." == last["StatusReason"]
        assert images == {group["old_image"]}
    else:
        assert last["Status"] == "Successful"
        assert (group["old_image"] in images) is (replaced < 2)
        assert group["new_image"] in images


def test_skip_matching_leaves_instances_already_on_the_desired_configuration(aws, group):
    """RefreshPreferences.SkipMatching: "If enabled (true), then Amazon EC2 Auto Scaling
    skips replacing instances that match the desired configuration." """
    autoscaling = aws("autoscaling")
    first = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group))[
        "InstanceRefreshId"
    ]
    _until_done(aws, first)
    on_v2 = set(_images(aws))

    again = autoscaling.start_instance_refresh(
        AutoScalingGroupName=GROUP, DesiredConfiguration=_v2(group), Preferences={"SkipMatching": True}
    )["InstanceRefreshId"]

    final = _until_done(aws, again)
    assert (final["Status"], final["InstancesToUpdate"], final["PercentageComplete"]) == ("Successful", 0, 100)
    assert _images(aws) == on_v2 == {group["new_image"]}


def test_the_fail_refresh_tag_fails_the_next_refresh_only(aws, group):
    """The HTTP form of plan_failure: the demo and end-to-end tests reach moto only over HTTP."""
    tag = {"ResourceId": GROUP, "ResourceType": "auto-scaling-group", "Key": emulated_asg.FAIL_REFRESH_TAG}
    aws("autoscaling").create_or_update_tags(Tags=[{**tag, "Value": "50", "PropagateAtLaunch": False}])
    autoscaling = aws("autoscaling")

    failing = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP)["InstanceRefreshId"]
    assert _until_done(aws, failing)["Status"] == "Failed"
    again = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP)["InstanceRefreshId"]
    assert _until_done(aws, again)["Status"] == "Successful"
