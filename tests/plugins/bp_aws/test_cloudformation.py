from pathlib import Path

import pytest

from bp_aws.exceptions import StackDeployFailed
from bp_aws.operators.cloudformation import CloudFormationDeleteStackOperator, CloudFormationDeployOperator
from tests.plugins.conftest import resume

TEMPLATE = Path(__file__).parent / "templates" / "fleet-mini.yaml"
STACK = "bp-gpu-fleet-staging-mini"


def _deploy(baseline, **overrides):
    parameters = {"SubnetId": baseline.private_subnet_ids[0], "ImageId": baseline.base_ami_id}
    parameters.update(overrides.pop("parameters", {}))
    return CloudFormationDeployOperator(
        task_id="deploy",
        stack_name=STACK,
        template_file=str(TEMPLATE),
        parameters=parameters,
        tags={"fleet": "mini", "stage": "staging"},
        waiter_delay=0,
        waiter_max_attempts=20,
        **overrides,
    )


def _stack(aws_http):
    return aws_http("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]


def _max_size(aws_http):
    groups = aws_http("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["asg-staging-mini"])
    return groups["AutoScalingGroups"][0]["MaxSize"]


def _log_lines(capsys):
    return capsys.readouterr().out


def test_create_logs_the_change_set_and_returns_the_outputs(aws_http, baseline, capsys):
    outputs = _deploy(baseline).execute({})

    assert outputs == {"AutoScalingGroupName": "asg-staging-mini", "QueueEmptyAlarm": "staging-mini-queue-empty"}
    assert _stack(aws_http)["StackStatus"] == "CREATE_COMPLETE"
    log = _log_lines(capsys)
    assert "ACTION  LOGICAL ID       RESOURCE TYPE" in log
    assert "Add     BacklogTracking  AWS::AutoScaling::ScalingPolicy" in log
    policies = aws_http("autoscaling").describe_policies(AutoScalingGroupName="asg-staging-mini")["ScalingPolicies"]
    assert [p["PolicyType"] for p in policies] == ["TargetTrackingScaling"]
    alarms = aws_http("cloudwatch").describe_alarms(AlarmNames=["staging-mini-queue-empty"])["MetricAlarms"]
    assert alarms[0]["Threshold"] == 0


def test_a_changed_parameter_updates_and_an_unchanged_one_is_a_no_op(aws_http, baseline, capsys):
    _deploy(baseline).execute({})
    capsys.readouterr()

    _deploy(baseline, parameters={"MaxSize": 4}).execute({})
    assert _stack(aws_http)["StackStatus"] == "UPDATE_COMPLETE"
    assert _max_size(aws_http) == 4
    assert "Modify  Group       AWS::AutoScaling::AutoScalingGroup  False" in _log_lines(capsys)

    outputs = _deploy(baseline, parameters={"MaxSize": 4}).execute({})
    assert outputs["AutoScalingGroupName"] == "asg-staging-mini"
    assert "is already up to date: The submitted information didn't contain changes" in _log_lines(capsys)
    change_sets = aws_http("cloudformation").list_change_sets(StackName=STACK)["Summaries"]
    assert [c["Status"] for c in change_sets if c["Status"] == "FAILED"] == []


def test_an_update_that_rolls_back_fails_with_the_stack_events(aws_http, baseline):
    _deploy(baseline).execute({})

    with pytest.raises(StackDeployFailed) as failed:
        _deploy(baseline, parameters={"MaxSize": 3, "PolicyGroup": "asg-staging-missing"}).execute({})

    message = str(failed.value)
    assert message.startswith(f"Stack {STACK} deployment ended UPDATE_ROLLBACK_COMPLETE")
    assert "BacklogTracking UPDATE_FAILED: AutoScalingGroup name not found - asg-staging-missing" in message
    assert _stack(aws_http)["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert _max_size(aws_http) == 2, "the rollback restored the previous configuration"


def test_a_failed_create_rolls_back_and_a_fixed_rerun_replaces_it(aws_http, baseline, capsys):
    with pytest.raises(StackDeployFailed, match="deployment ended ROLLBACK_COMPLETE: BacklogTracking CREATE_FAILED"):
        _deploy(baseline, parameters={"PolicyGroup": "asg-staging-missing"}).execute({})
    assert _stack(aws_http)["StackStatus"] == "ROLLBACK_COMPLETE"

    outputs = _deploy(baseline).execute({})

    assert outputs["AutoScalingGroupName"] == "asg-staging-mini"
    assert _stack(aws_http)["StackStatus"] == "CREATE_COMPLETE"
    assert "ROLLBACK_COMPLETE from a failed create: deleting it first" in _log_lines(capsys)


def test_the_deferrable_deploy_waits_in_a_trigger(aws_http, baseline):
    outputs = resume(_deploy(baseline, deferrable=True))

    assert outputs["QueueEmptyAlarm"] == "staging-mini-queue-empty"
    assert _stack(aws_http)["StackStatus"] == "CREATE_COMPLETE"


@pytest.mark.parametrize("deferrable", [False, True])
def test_delete_removes_the_stack_and_its_resources(aws_http, baseline, deferrable):
    _deploy(baseline).execute({})
    operator = CloudFormationDeleteStackOperator(
        task_id="delete", stack_name=STACK, deferrable=deferrable, waiter_delay=0, waiter_max_attempts=10
    )

    resume(operator)

    groups = aws_http("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=["asg-staging-mini"])
    assert groups["AutoScalingGroups"] == []
    stacks = aws_http("cloudformation").list_stacks(StackStatusFilter=["CREATE_COMPLETE"])["StackSummaries"]
    assert STACK not in [s["StackName"] for s in stacks]


def test_deleting_a_missing_stack_is_a_no_op(aws_http, baseline, capsys):
    CloudFormationDeleteStackOperator(task_id="delete", stack_name="bp-gpu-fleet-staging-nope").execute({})

    assert "Stack bp-gpu-fleet-staging-nope does not exist: nothing to delete" in _log_lines(capsys)


def test_a_template_is_given_exactly_once():
    with pytest.raises(ValueError, match="exactly one of template_body and template_file"):
        CloudFormationDeployOperator(task_id="d", stack_name=STACK)


def test_a_missing_stack_is_named(aws_http, baseline):
    from bp_aws.exceptions import AwsResourceNotFound
    from bp_aws.hooks.cloudformation import ChangeSetHook

    with pytest.raises(AwsResourceNotFound, match="CloudFormation stack 'bp-gpu-fleet-staging-nope' does not exist"):
        ChangeSetHook().require_stack("bp-gpu-fleet-staging-nope")


def test_a_failed_delete_fails_with_the_stack_events(aws_http, baseline):
    body = '{"Resources": {"Reports": {"Type": "AWS::S3::Bucket", "Properties": {"BucketName": "bp-reports-mini"}}}}'
    CloudFormationDeployOperator(task_id="deploy", stack_name=STACK, template_body=body, waiter_delay=0).execute({})
    aws_http("s3").put_object(Bucket="bp-reports-mini", Key="reports/weekly/2026-W47/pack.html", Body=b"<html/>")

    with pytest.raises(StackDeployFailed) as failed:
        CloudFormationDeleteStackOperator(task_id="delete", stack_name=STACK, waiter_delay=0).execute({})

    assert str(failed.value).startswith(f"Stack {STACK} deletion ended DELETE_FAILED: Reports DELETE_FAILED: ")
    assert "The bucket you tried to delete is not empty" in str(failed.value)
    assert "The following resource(s) failed to delete: [Reports]." in str(failed.value)
