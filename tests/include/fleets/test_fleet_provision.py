import json

import pytest

from include.errors import InvalidRequest
from include.fleets import provision as fleet_provision
from include.fleets.config import FleetConfig
from include.fleets.provision import FleetRequest
from include.naming import platform
from include.naming.fleet import Fleet

CONFIG = FleetConfig("sdxl-standard", ("g4dn.xlarge", "g5.xlarge"), 3, 300, 2.0, 15)
FLEET = Fleet("staging", "gpu-default")
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _params(**change):
    return {
        "fleet_stage": "staging",
        "fleet_slug": "gpu-default",
        "action": "apply",
        "config_wait_minutes": 0,
        **change,
    }


def test_a_request_names_its_stacks_group_and_parameters():
    request = FleetRequest.from_params(_params(fleet_stage="production", config_wait_minutes=2))
    wiring = request.wiring()

    assert wiring["shared_stack"] == "bp-gpu-shared-production"
    assert wiring["fleet_stack"] == "bp-gpu-fleet-production-gpu-default"
    assert wiring["auto_scaling_group"] == "asg-production-gpu-default"
    assert wiring["desired_config"] == Fleet("production", "gpu-default").desired_config
    assert (wiring["action"], wiring["config_wait_seconds"]) == ("apply", 120)
    assert request.lock == Fleet("production", "gpu-default").lock


def test_a_request_comes_back_from_its_serialized_form_as_it_was():
    request = FleetRequest.from_params(_params(action="destroy", config_wait_minutes=5))
    data = json.loads(json.dumps(request.serialize()))

    assert FleetRequest.deserialize(data, 1) == request
    with pytest.raises(TypeError, match="FleetRequest version 2 is newer than this code's 1"):
        FleetRequest.deserialize(data, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fleet_slug": "gpu; rm -rf /"}, "fleet_slug 'gpu; rm -rf /' must be lowercase letters"),
        ({"fleet_slug": "$(curl evil)"}, "must be lowercase letters"),
        ({"fleet_slug": "../../other"}, "must be lowercase letters"),
        ({"fleet_stage": "prod"}, "fleet_stage 'prod' is not one of staging, production"),
        ({"action": "recreate"}, "action 'recreate' is not one of apply, destroy"),
        ({"config_wait_minutes": 121}, "config_wait_minutes must be a whole number from 0 to 120, got 121"),
        ({"config_wait_minutes": True}, "config_wait_minutes must be a whole number"),
    ],
)
def test_bad_params_are_refused_with_a_reason(change, message):
    with pytest.raises(InvalidRequest, match=message.replace("(", r"\(").replace("$", r"\$")):
        FleetRequest.from_params(_params(**change))


TOPIC = "arn:aws:sns:us-east-1:123456789012:bp-gpu-scale-to-zero-staging"
ALERT_TOPICS = {
    "warning": ["arn:aws:sns:us-east-1:123456789012:bp-ops-alerts-staging"],
    "critical": [
        "arn:aws:sns:us-east-1:123456789012:bp-ops-alerts-staging",
        "arn:aws:sns:us-east-1:123456789012:bp-ops-pager-staging",
    ],
}


def test_stack_parameters_fill_the_instance_type_slots_and_name_the_baselines_parameters():
    parameters = fleet_provision.fleet_stack_parameters(FLEET, CONFIG, TOPIC, KEY_ARN, ALERT_TOPICS)

    assert [parameters[f"InstanceType{n}"] for n in range(1, 5)] == ["g4dn.xlarge", "g5.xlarge", "", ""]
    assert (parameters["MaxSize"], parameters["BacklogTarget"], parameters["ScaleToZeroMinutes"]) == ("3", "2", "15")
    assert parameters["PrivateSubnetIds"] == platform.private_subnet_ids()
    assert parameters["AmiParameterName"] == Fleet("staging", "gpu-default").ami_pointer
    assert parameters["ScaleToZeroTopicArn"] == TOPIC
    assert parameters["FleetSecretKeyArn"] == KEY_ARN


def test_the_alarm_tiers_come_from_the_config_and_notify_the_stages_alert_topics():
    parameters = fleet_provision.fleet_stack_parameters(FLEET, CONFIG, TOPIC, KEY_ARN, ALERT_TOPICS)

    # seed 004: P2 ErrorRate >= 20 % for 5 min, P3 QueueDepth >= 10 for 30 min
    assert (parameters["ErrorRateAlarmPercent"], parameters["QueueDeepJobs"], parameters["QueueDeepMinutes"]) == (
        "20",
        "10",
        "30",
    )
    assert parameters["IdleWorkersMinutes"] == "25"  # scale_to_zero_minutes 15 + the 10-minute grace
    assert parameters["CriticalTopicArns"] == ",".join(ALERT_TOPICS["critical"])
    assert parameters["WarningTopicArns"] == ALERT_TOPICS["warning"][0]
    assert fleet_provision.sibling_topic_arns(TOPIC, ["bp-ops-alerts-staging"]) == ALERT_TOPICS["warning"]
    longest = FleetConfig("sdxl-standard", ("g5.xlarge",), 3, 300, 4.0, 1440)
    assert fleet_provision.idle_workers_minutes(longest) == 1440  # CloudWatch's one-day window


def test_the_ami_pointer_must_exist_and_be_an_image():
    assert fleet_provision.ami_pointer_problem({"DataType": "aws:ec2:image", "Value": "ami-1"}, FLEET) is None
    missing = fleet_provision.ami_pointer_problem(None, FLEET)
    assert missing.startswith("the fleet has no AMI pointer /bp/ami/fleets/staging/gpu-default: run the ")
    assert "gpu_ami_build_and_bake DAG with fleet_stage=staging, fleet_slug=gpu-default, mode=base" in missing
    text = fleet_provision.ami_pointer_problem({"DataType": "text", "Value": "ami-1"}, FLEET)
    assert "has DataType 'text', not aws:ec2:image" in text


def test_a_fleet_may_be_destroyed_only_at_zero():
    assert fleet_provision.destroy_blockers(None) == []
    assert fleet_provision.destroy_blockers({"DesiredCapacity": 0, "Instances": []}) == []
    busy = {"DesiredCapacity": 1, "Instances": [{"LifecycleState": "InService"}, {"LifecycleState": "Terminating"}]}
    assert fleet_provision.destroy_blockers(busy) == [
        "desired capacity is 1",
        "2 instance(s) still in the group (InService, Terminating)",
    ]


# --- drift against a fleet deployed on the emulator ----------------------------------


def _deploy(aws, name, template, parameters, tags):
    cloudformation = aws("cloudformation")
    cloudformation.create_change_set(
        StackName=name,
        ChangeSetName="create",
        ChangeSetType="CREATE",
        TemplateBody=template.read_text(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        Capabilities=["CAPABILITY_NAMED_IAM"],
    )
    cloudformation.execute_change_set(StackName=name, ChangeSetName="create")
    stack = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE", cloudformation.describe_stack_events(StackName=name)
    return {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


@pytest.fixture
def deployed(aws, seeded):
    package = fleet_provision.function_package()
    aws("s3").put_object(Bucket=seeded.logs_bucket, Key=package.key, Body=package.body)
    shared = _deploy(
        aws,
        platform.shared_stack("staging"),
        fleet_provision.SHARED_TEMPLATE,
        fleet_provision.shared_stack_parameters("staging", seeded.logs_bucket, package.key, seeded.vpc_id),
        fleet_provision.shared_stack_tags(FLEET),
    )
    outputs = _deploy(
        aws,
        Fleet("staging", "gpu-default").fleet_stack,
        fleet_provision.FLEET_TEMPLATE,
        fleet_provision.fleet_stack_parameters(
            FLEET, CONFIG, shared["ScaleToZeroTopicArn"], KEY_ARN, _alert_topics(shared)
        ),
        fleet_provision.fleet_stack_tags(FLEET),
    )
    return shared, outputs


def _alert_topics(shared):
    topic = shared["ScaleToZeroTopicArn"]
    return {
        "warning": fleet_provision.sibling_topic_arns(topic, ["bp-ops-alerts-staging"]),
        "critical": fleet_provision.sibling_topic_arns(topic, ["bp-ops-alerts-staging", "bp-ops-pager-staging"]),
    }


def _drift(aws, shared, outputs, config=CONFIG):
    autoscaling, group_name = aws("autoscaling"), outputs["AutoScalingGroupName"]
    alarms = aws("cloudwatch").describe_alarms(AlarmNames=[outputs[key] for key in fleet_provision.ALARM_OUTPUTS])[
        "MetricAlarms"
    ]
    by_name = {a["AlarmName"]: a for a in alarms}
    version = aws("ec2").describe_launch_template_versions(
        LaunchTemplateId=outputs["LaunchTemplateId"], Versions=[outputs["LaunchTemplateVersion"]]
    )["LaunchTemplateVersions"][0]
    return fleet_provision.fleet_drift(
        config,
        FLEET,
        group=autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"][0],
        policies=autoscaling.describe_policies(AutoScalingGroupName=group_name)["ScalingPolicies"],
        alarms={key: by_name.get(outputs[key]) for key in fleet_provision.ALARM_OUTPUTS},
        image_id=version["LaunchTemplateData"]["ImageId"],
        topic_arn=shared["ScaleToZeroTopicArn"],
        alert_topic_arns=_alert_topics(shared),
    )


def test_a_freshly_deployed_fleet_matches_its_config(aws, deployed):
    assert _drift(aws, *deployed) == []


def test_drift_names_each_difference(aws, deployed):
    shared, outputs = deployed
    group_name = outputs["AutoScalingGroupName"]
    tag = {"ResourceId": group_name, "ResourceType": "auto-scaling-group", "PropagateAtLaunch": True}
    aws("autoscaling").create_or_update_tags(Tags=[{**tag, "Key": platform.FLEET_TAG, "Value": "other"}])
    policies = aws("autoscaling").describe_policies(AutoScalingGroupName=group_name)["ScalingPolicies"]
    tracking = next(p for p in policies if p["PolicyType"] == "TargetTrackingScaling")
    aws("autoscaling").delete_policy(AutoScalingGroupName=group_name, PolicyName=tracking["PolicyName"])
    aws("cloudwatch").delete_alarms(AlarmNames=[outputs["QueueEmptyAlarmName"], outputs["IdleWorkersAlarmName"]])
    deep = aws("cloudwatch").describe_alarms(AlarmNames=[outputs["QueueDeepAlarmName"]])["MetricAlarms"][0]
    aws("cloudwatch").put_metric_alarm(  # silenced by hand
        **{k: deep[k] for k in ("AlarmName", "Namespace", "MetricName", "Dimensions", "Statistic", "Period")},
        **{k: deep[k] for k in ("EvaluationPeriods", "Threshold", "ComparisonOperator")},
        AlarmActions=[],
    )

    problems = _drift(aws, shared, outputs)

    assert problems == [
        "tag fleet is 'other', expected 'gpu-default'",
        "expected one target tracking policy, found 0",
        "the queue-empty alarm is missing",
        f"queue-deep alarm actions is [], expected {_alert_topics(shared)['warning']!r}",
        "the idle-workers alarm is missing",
    ]


def test_a_config_the_stack_does_not_carry_is_drift(aws, deployed):
    other = FleetConfig("sdxl-standard", ("g5.xlarge",), 3, 300, 4.0, 30, error_rate_alarm_percent=35)

    problems = _drift(aws, *deployed, config=other)

    assert problems == [
        "instance types is ['g4dn.xlarge', 'g5.xlarge'], expected ['g5.xlarge']",
        "backlog target is 2.0, expected 4.0",
        "queue-empty alarm evaluation periods is 15, expected 30",
        "error-rate alarm threshold is 20.0, expected 35.0",
        "idle-workers alarm evaluation periods is 25, expected 40",
    ]
