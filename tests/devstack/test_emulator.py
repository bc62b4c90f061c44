"""The emulator extension gives moto AWS's documented behaviour. Each test quotes the
sentence of the AWS API reference it follows."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from include import ssm_paths
from include.devstack.emulator import autoscaling as emulated_asg
from include.devstack.emulator import ssm as emulated_ssm

GROUP = "asg-staging-gpu-default"


@pytest.fixture
def group(aws, seeded):
    ec2, autoscaling = aws("ec2"), aws("autoscaling")
    template = ec2.create_launch_template(
        LaunchTemplateName="bp-fleet-lt",
        LaunchTemplateData={"ImageId": seeded.base_ami_id, "InstanceType": "g4dn.xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        VPCZoneIdentifier=seeded.private_subnet_ids[0],
    )
    image = ec2.register_image(Name="bp-gpu-v2", RootDeviceName="/dev/sda1", BlockDeviceMappings=[])["ImageId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"ImageId": image}
    )
    return {"template": template, "new_image": image, "old_image": seeded.base_ami_id}


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


def test_checkpoints_pause_the_refresh(aws, group):
    """RefreshPreferences.CheckpointPercentages: "(Optional) Threshold values for each
    checkpoint in ascending order." """
    refresh_id = aws("autoscaling").start_instance_refresh(
        AutoScalingGroupName=GROUP, Preferences={"CheckpointPercentages": [50, 100]}
    )["InstanceRefreshId"]

    reasons = [_describe(aws, refresh_id)["StatusReason"] for _ in range(4)]

    assert "Checkpoint 50% reached: waiting the checkpoint delay." in reasons


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


def test_an_unchanged_change_set_fails_with_aws_reason(aws, seeded):
    """DescribeChangeSet StatusReason for a change set with nothing to change, as
    CloudFormation reports it: "The submitted information didn't contain changes. Submit
    different information to create a change set." """
    cfn = aws("cloudformation")
    template = json.dumps(
        {
            "Parameters": {"Retention": {"Type": "Number", "Default": 30}},
            "Resources": {
                "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"RetentionInDays": {"Ref": "Retention"}}}
            },
        }
    )
    cfn.create_change_set(StackName="s", ChangeSetName="c1", TemplateBody=template, ChangeSetType="CREATE")
    cfn.execute_change_set(StackName="s", ChangeSetName="c1")

    cfn.create_change_set(
        StackName="s",
        ChangeSetName="c2",
        TemplateBody=template,
        ChangeSetType="UPDATE",
        Parameters=[{"ParameterKey": "Retention", "ParameterValue": "30"}],
    )
    cfn.create_change_set(
        StackName="s",
        ChangeSetName="c3",
        TemplateBody=template,
        ChangeSetType="UPDATE",
        Parameters=[{"ParameterKey": "Retention", "ParameterValue": "90"}],
    )

    unchanged = cfn.describe_change_set(StackName="s", ChangeSetName="c2")
    changed = cfn.describe_change_set(StackName="s", ChangeSetName="c3")
    assert (unchanged["Status"], unchanged["ExecutionStatus"]) == ("FAILED", "UNAVAILABLE")
    assert unchanged["StatusReason"] == (
        "The submitted information didn't contain changes. Submit different information to create a change set."
    )
    assert changed["Status"] == "CREATE_COMPLETE"
    assert [(c["ResourceChange"]["Action"], c["ResourceChange"]["LogicalResourceId"]) for c in changed["Changes"]] == [
        ("Modify", "Logs")
    ]


def test_an_invalid_ami_parameter_is_accepted_then_dropped(aws, seeded):
    """PutParameter DataType: "If you submit an invalid AMI value, the PutParameter
    operation will return success, but the asynchronous validation will fail and the
    parameter will not be created or updated." """
    ssm = aws("ssm")

    answer = ssm.put_parameter(
        Name="/bp/ami/fleets/staging/new", Value="ami-0123456789abcdef0", Type="String", DataType="aws:ec2:image"
    )

    assert answer["Version"] == 1
    with pytest.raises(ClientError) as missing:
        ssm.get_parameter(Name="/bp/ami/fleets/staging/new")
    assert missing.value.response["Error"]["Code"] == "ParameterNotFound"
    ssm.put_parameter(
        Name="/bp/ami/fleets/staging/new", Value=seeded.base_ami_id, Type="String", DataType="aws:ec2:image"
    )
    assert ssm.get_parameter(Name="/bp/ami/fleets/staging/new")["Parameter"]["Value"] == seeded.base_ami_id


def test_run_command_reports_what_the_instance_did(aws, seeded):
    """GetCommandInvocation: StandardOutputContent is "The first 24,000 characters written
    by the plugin to stdout"; Status is the invocation's status (Success, Failed, ...)."""
    [instance] = aws("ec2").run_instances(ImageId=seeded.base_ami_id, MinCount=1, MaxCount=1)["Instances"]
    emulated_ssm.program_command(
        "AWS-RunShellScript",
        lambda instance_id, parameters: emulated_ssm.CommandResult(
            status="Failed",
            stdout=f"ran {parameters['commands'][0]} on {instance_id}",
            stderr="sha mismatch",
            response_code=3,
        ),
    )
    ssm = aws("ssm")

    command = ssm.send_command(
        InstanceIds=[instance["InstanceId"]], DocumentName="AWS-RunShellScript", Parameters={"commands": ["bundle"]}
    )["Command"]
    invocation = ssm.get_command_invocation(CommandId=command["CommandId"], InstanceId=instance["InstanceId"])

    assert (invocation["Status"], invocation["ResponseCode"]) == ("Failed", 3)
    assert invocation["StandardOutputContent"] == f"ran bundle on {instance['InstanceId']}"
    assert invocation["StandardErrorContent"] == "sha mismatch"


def test_a_stack_whose_resource_can_not_be_deleted_stays_delete_failed(aws, seeded):
    """CloudFormation stack status DELETE_FAILED: "Unsuccessful deletion of one or more
    stacks. Because the delete failed, you might have some resources that are still
    running"; S3 refuses to delete a bucket that isn't empty ("The bucket you tried to
    delete is not empty")."""
    cfn, s3 = aws("cloudformation"), aws("s3")
    body = json.dumps({"Resources": {"Reports": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "bp-r"}}}})
    cfn.create_stack(StackName="reports", TemplateBody=body)
    s3.put_object(Bucket="bp-r", Key="pack.html", Body=b"x")

    cfn.delete_stack(StackName="reports")

    assert cfn.describe_stacks(StackName="reports")["Stacks"][0]["StackStatus"] == "DELETE_FAILED"
    failed = [
        e for e in cfn.describe_stack_events(StackName="reports")["StackEvents"] if e["LogicalResourceId"] == "Reports"
    ]
    assert (failed[0]["ResourceStatus"], failed[0]["ResourceStatusReason"]) == (
        "DELETE_FAILED",
        "The bucket you tried to delete is not empty",
    )
    assert "bp-r" in [b["Name"] for b in s3.list_buckets()["Buckets"]]


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


def test_list_command_invocations_gives_one_per_instance(aws, seeded):
    """ListCommandInvocations: "An invocation is copy of a command sent to a specific
    managed node"; "Details: If true, CommandPlugins includes ... the plugin output"."""
    instances = aws("ec2").run_instances(ImageId=seeded.base_ami_id, MinCount=2, MaxCount=2)["Instances"]
    ids = sorted(i["InstanceId"] for i in instances)
    emulated_ssm.program_command(
        "AWS-RunShellScript", lambda instance_id, parameters: emulated_ssm.CommandResult(stdout=f"hi {instance_id}")
    )
    ssm = aws("ssm")
    command = ssm.send_command(InstanceIds=ids, DocumentName="AWS-RunShellScript", Parameters={"commands": ["x"]})

    listed = ssm.list_command_invocations(CommandId=command["Command"]["CommandId"], Details=True)

    invocations = sorted(listed["CommandInvocations"], key=lambda i: i["InstanceId"])
    assert [i["InstanceId"] for i in invocations] == ids
    assert [i["CommandPlugins"][0]["Output"] for i in invocations] == [f"hi {i}" for i in ids]
    one = ssm.list_command_invocations(CommandId=command["Command"]["CommandId"], InstanceId=ids[0])
    assert [i["InstanceId"] for i in one["CommandInvocations"]] == [ids[0]]
    assert "CommandPlugins" not in one["CommandInvocations"][0]


def test_a_group_launches_the_image_its_ssm_parameter_names_at_launch(aws, seeded):
    """EC2 launch templates: "you can specify a Systems Manager parameter instead of an AMI
    ID ... resolve:ssm:parameter-name"; the value is resolved when the instance launches."""
    ec2, ssm, autoscaling = aws("ec2"), aws("ssm"), aws("autoscaling")
    pointer = ssm_paths.fleet_ami("staging", "lt")
    ssm.put_parameter(Name=pointer, Value=seeded.base_ami_id, Type="String")
    template = ec2.create_launch_template(
        LaunchTemplateName="bp-resolve", LaunchTemplateData={"ImageId": f"resolve:ssm:{pointer}"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName="asg-resolve",
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=1,
        MixedInstancesPolicy={
            "LaunchTemplate": {
                "LaunchTemplateSpecification": {"LaunchTemplateId": template, "Version": "1"},
                "Overrides": [{"InstanceType": "g5.xlarge"}, {"InstanceType": "g4dn.xlarge"}],
            }
        },
        VPCZoneIdentifier=seeded.private_subnet_ids[0],
    )

    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=["asg-resolve"])["AutoScalingGroups"][0]
    [instance] = ec2.describe_instances(InstanceIds=[group["Instances"][0]["InstanceId"]])["Reservations"][0][
        "Instances"
    ]
    assert (instance["ImageId"], instance["InstanceType"]) == (seeded.base_ami_id, "g5.xlarge")


def test_the_fail_refresh_tag_fails_the_next_refresh_only(aws, group):
    """The HTTP form of plan_failure: the demo and end-to-end tests reach moto only over HTTP."""
    tag = {"ResourceId": GROUP, "ResourceType": "auto-scaling-group", "Key": emulated_asg.FAIL_REFRESH_TAG}
    aws("autoscaling").create_or_update_tags(Tags=[{**tag, "Value": "50", "PropagateAtLaunch": False}])
    autoscaling = aws("autoscaling")

    failing = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP)["InstanceRefreshId"]
    assert _until_done(aws, failing)["Status"] == "Failed"
    again = autoscaling.start_instance_refresh(AutoScalingGroupName=GROUP)["InstanceRefreshId"]
    assert _until_done(aws, again)["Status"] == "Successful"
