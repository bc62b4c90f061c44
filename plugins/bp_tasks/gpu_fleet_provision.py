"""Task bodies of ``gpu_fleet_provision``: the config read and judged, the AMI pointer
checked, the function packaged, the deployed fleet verified, the destroy guarded."""

from __future__ import annotations

import json
import logging

from airflow.sdk import serde, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import handed_over, report_outcome, validated
from include.alerts import SEVERITIES
from include.fleets import config as fleet_config
from include.fleets import provision
from include.fleets.provision import FleetRequest
from include.naming.fleet import Fleet

log = logging.getLogger("bp.gpu_fleet_provision")
UNCHANGED = "Nothing was changed."

# the request travels as itself between the run's tasks: its task processes may take it
# back from XCom (Airflow refuses any class it was not told of)
serde.allow_class(FleetRequest)


@task
def validate_request(params: dict | None = None, ti=None, dag_run=None, dag=None) -> FleetRequest:
    """Domain checks on the params, before any AWS call. Every later task gets the
    request itself; the DAG's operators read its :meth:`~FleetRequest.wiring` keys."""
    request = validated(FleetRequest.from_params, params, UNCHANGED, dag_run=dag_run, dag=dag)
    log.info("Request for %s: %s", request.fleet, request.serialize())
    return handed_over(request, ti)


@task.branch
def action_path(request: FleetRequest) -> str:
    return "wait_for_desired_config" if request.action == "apply" else "check_fleet_idle"


@task(multiple_outputs=False)
def read_desired_config(request: FleetRequest, params: dict | None = None) -> dict:
    """Parse and validate the config against the templates catalogue."""
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    name = request.fleet.desired_config
    parameter = SsmParameterHook(aws_conn_id=params["aws_conn_id"]).require(name)
    try:
        config = fleet_config.parse_desired_config(parameter["Value"], source=name)
    except fleet_config.InvalidFleetConfig as error:
        raise AirflowFailException(f"{error}. Fix it in the admin UI and run again; {UNCHANGED.lower()}") from None
    log.info("desired_config version %s: %s", parameter["Version"], config.as_dict())
    return config.as_dict()


@task
def check_ami_pointer(request: FleetRequest, params: dict | None = None) -> str:
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    fleet = request.fleet
    pointer = SsmParameterHook(aws_conn_id=params["aws_conn_id"]).get(fleet.ami_pointer)
    problem = provision.ami_pointer_problem(pointer, fleet)
    if problem:
        raise AirflowFailException(f"Can't provision the fleet: {problem}. {UNCHANGED}")
    log.info("%s names %s", fleet.ami_pointer, pointer["Value"])
    return pointer["Value"]


@task.branch
def approval_path(request: FleetRequest) -> str:
    from bp_tasks.approvals import approval_or

    return approval_or(request.fleet, "approve_apply")


@task
def apply_question(request: FleetRequest, config: dict) -> dict[str, str]:
    """What the approver of a production apply reads: ``subject`` (it names the fleet) and ``body``."""
    fleet = request.fleet
    return {
        "subject": f"Apply the desired_config of GPU fleet {fleet}?",
        "body": f"Stack **{fleet.fleet_stack}** would be created or updated from `{fleet.desired_config}`: "
        + ", ".join(f"{key} `{json.dumps(value)}`" for key, value in sorted(config.items()))
        + ". The change set is logged by deploy_fleet_stack.",
    }


@task
def destroy_question(request: FleetRequest) -> dict[str, str]:
    """What the approver of a destroy reads: ``subject`` (it names the fleet) and ``body``."""
    return {
        "subject": f"Destroy GPU fleet {request.fleet}?",
        "body": f"Stack **{request.fleet.fleet_stack}** and everything in it (ASG, launch template, alarms, worker "
        "role, log group) would be deleted. The ASG is at 0 instances.",
    }


@task(multiple_outputs=False)
def package_function(request: FleetRequest, params: dict | None = None) -> dict:
    """Upload the scale-to-zero function's zip under a key named by its sha256; an object
    already at that key is reused only when its content has that sha256. Returns the
    shared stack's parameters (with the fleets' VPC, which bounds where dev nodes launch)."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from bp_aws.hooks.ssm_parameters import SsmParameterHook
    from include.naming import platform

    s3 = OwnBucketsS3Hook(aws_conn_id=params["aws_conn_id"])
    bucket = platform.logs_bucket(s3.account_id)
    package = provision.function_package()
    vpc_id = SsmParameterHook(aws_conn_id=params["aws_conn_id"]).require(platform.vpc_id())["Value"]
    parameters = provision.shared_stack_parameters(request.fleet.stage, bucket, package.key, vpc_id)
    if s3.check_for_key(package.key, bucket):
        found = s3.get_key(package.key, bucket).get()["Body"].read()
        if provision.sha256_of(found) == package.sha256:
            log.info("s3://%s/%s is already there (sha256 checked)", bucket, package.key)
            return parameters
        log.warning("s3://%s/%s holds other content than its name says: replacing it", bucket, package.key)
    s3.load_bytes(package.body, package.key, bucket, replace=True)
    log.info("Uploaded s3://%s/%s (%d bytes)", bucket, package.key, len(package.body))
    return parameters


@task
def stack_tags(request: FleetRequest) -> dict:
    """The shared and the fleet stack's tags (CloudFormation propagates them)."""
    fleet = request.fleet
    return {"shared": provision.shared_stack_tags(fleet), "fleet": provision.fleet_stack_tags(fleet)}


@task(multiple_outputs=False)
def fleet_stack_parameters(request: FleetRequest, config: dict, shared: dict, params: dict | None = None) -> dict:
    """The stack's parameters, with the one KMS key the workers may decrypt with: the fleet
    secret's (preflight reports a missing secret; here it fails the apply before any change)."""
    from bp_aws.exceptions import AwsResourceNotFound
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    fleet = request.fleet
    try:
        key_arn = SsmParameterHook(aws_conn_id=params["aws_conn_id"]).encryption_key_arn(fleet.fleet_secret)
    except (AwsResourceNotFound, ValueError) as error:
        raise AirflowFailException(
            f"{error}: the stage's workers need the fleet secret {fleet.fleet_secret} (a SecureString) to register; "
            "set it, then run again. Nothing was changed."
        ) from None
    topic_arn = shared["ScaleToZeroTopicArn"]
    return provision.fleet_stack_parameters(
        fleet, fleet_config.FleetConfig.from_dict(config), topic_arn, key_arn, _alert_topic_arns(fleet, topic_arn)
    )


def _alert_topic_arns(fleet: Fleet, scale_to_zero_topic_arn: str) -> dict[str, list[str]]:
    """Severity -> the stage's alert topics (as the pipeline's alerts route them), in the
    account and region of the shared stack's topic: where the alarm tiers notify."""
    from bp_aws.notifiers.ops_alert import alert_topic_names

    return {
        severity: provision.sibling_topic_arns(scale_to_zero_topic_arn, alert_topic_names(severity, fleet.stage))
        for severity in SEVERITIES
    }


@task(multiple_outputs=False)
def verify_fleet(request: FleetRequest, config: dict, shared: dict, outputs: dict, params: dict | None = None) -> dict:
    """The deployed ASG, policies and alarms must say what the config says."""
    from bp_aws.hooks.ami import AmiHook
    from bp_aws.hooks.autoscaling import AutoScalingHook
    from bp_aws.hooks.cloudwatch import AlarmHook

    conn, fleet = params["aws_conn_id"], request.fleet
    autoscaling = AutoScalingHook(aws_conn_id=conn)
    group_name = outputs["AutoScalingGroupName"]
    found = AlarmHook(aws_conn_id=conn).describe_alarms([outputs[key] for key in provision.ALARM_OUTPUTS])
    problems = provision.fleet_drift(
        fleet_config.FleetConfig.from_dict(config),
        fleet,
        group=autoscaling.describe_group(group_name),
        policies=autoscaling.describe_policies(group_name),
        alarms={key: found.get(outputs[key]) for key in provision.ALARM_OUTPUTS},
        image_id=AmiHook(aws_conn_id=conn).launch_template_image(
            outputs["LaunchTemplateId"], outputs["LaunchTemplateVersion"]
        ),
        topic_arn=shared["ScaleToZeroTopicArn"],
        alert_topic_arns=_alert_topic_arns(fleet, shared["ScaleToZeroTopicArn"]),
    )
    if problems:
        raise AirflowFailException(
            f"Stack {fleet.fleet_stack} deployed, but the fleet does not match its config: "
            f"{'; '.join(problems)}. Nothing was rolled back; run again or inspect the stack."
        )
    report_outcome(
        f"Fleet {fleet} is deployed: stacks {fleet.shared_stack} "
        f"and {fleet.fleet_stack}; {group_name} matches its desired_config {json.dumps(config, sort_keys=True)}"
    )
    return {**outputs, "verified": True}


@task
def check_fleet_idle(request: FleetRequest, params: dict | None = None) -> str:
    """Destroying a fleet with instances would kill running jobs: it must be at 0 first."""
    from bp_aws.hooks.autoscaling import AutoScalingHook

    fleet = request.fleet
    group = AutoScalingHook(aws_conn_id=params["aws_conn_id"]).describe_group_or_none(fleet.auto_scaling_group)
    blockers = provision.destroy_blockers(group)
    if blockers:
        raise AirflowFailException(
            f"Can't destroy {fleet.fleet_stack}: {fleet.auto_scaling_group} is not at 0 "
            f"({'; '.join(blockers)}). Let it scale to zero (or set its desired capacity to 0) "
            f"and run again; {UNCHANGED.lower()}"
        )
    return "no instances" if group else "no Auto Scaling group"
