"""The emulator extension gives moto AWS's documented behaviour for CloudFormation change
sets, SSM parameters and Run Command. Each test quotes the AWS API reference it follows."""

from __future__ import annotations

import hashlib
import json

import pytest
import yaml
from botocore.exceptions import ClientError

from devstack.emulator import ssm as emulated_ssm
from include.naming.fleet import Fleet


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
    pointer = Fleet("staging", "lt").ami_pointer
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


def test_a_document_from_a_template_is_described_with_the_hash_of_its_text(aws, seeded):
    """AWS::SSM::Document Content: "The content for the new SSM document in JSON or YAML";
    DescribeDocument's Hash: "The Sha256 or Sha1 hash of the document content"."""
    content = {"schemaVersion": "2.2", "description": "smoke", "mainSteps": [{"action": "aws:runShellScript"}]}
    template = {
        "Resources": {
            "Doc": {
                "Type": "AWS::SSM::Document",
                "Properties": {
                    "Name": "bp-doc-test",
                    "DocumentType": "Command",
                    "DocumentFormat": "YAML",
                    "Content": content,
                },
            }
        }
    }
    aws("cloudformation").create_stack(StackName="bp-doc-test", TemplateBody=json.dumps(template))

    described = aws("ssm").describe_document(Name="bp-doc-test")["Document"]
    text = aws("ssm").get_document(Name="bp-doc-test")["Content"]

    assert len(described["Hash"]) == len(hashlib.sha256().hexdigest())
    assert (described["DocumentFormat"], described["SchemaVersion"]) == ("YAML", "2.2")
    assert yaml.safe_load(text) == content
