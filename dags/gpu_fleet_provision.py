"""
### GPU fleet provisioning: the fleet's desired_config becomes CloudFormation stacks

Replaces the `provision-gpu-fleet.yml` and `apply-gpu-fleet-config.yml` workflows (seed
004). The admin UI writes `/bp/fleets/<stage>/<slug>/desired_config`; this DAG turns it
into two stacks, `bp-gpu-shared-<stage>` (the stage's scale-to-zero topic and function)
and `bp-gpu-fleet-<stage>-<slug>` (launch template, 100% Spot ASG, 0→1 step scaling,
1→N target tracking on BacklogPerInstance, queue-empty alarm → scale to 0).

**apply** (create, or update an existing fleet):

1. **validate_request**: params checked, before any AWS call;
2. **wait_for_desired_config** (up to `config_wait_minutes`, in the triggerer) →
   **read_desired_config**: validated against the fleet templates catalogue, every
   problem named at once; nothing is deployed from a bad config;
3. **check_ami_pointer**: the launch template resolves `/bp/ami/fleets/<stage>/<slug>`
   at each launch, so it must exist (else: run `gpu_ami_build_and_bake` in base mode);
4. **approve_apply** (production only: Approve/Reject in the Airflow UI);
5. **package_function** → **deploy_shared_stack** → **deploy_fleet_stack**: change
   sets, logged as tables; an unchanged config is a no-op; a failed deployment is
   rolled back by CloudFormation and fails the run with the failing stack events;
6. **verify_fleet**: the ASG, its policies and alarms match the config.

**destroy**: **check_fleet_idle** (the ASG must be at 0 instances) → **approve_destroy**
(always) → **delete_fleet_stack**. The shared stack stays for the stage's other fleets.

One run at a time, so two runs never change the same fleet's stacks together.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException

from bp_aws.operators.cloudformation import CloudFormationDeleteStackOperator, CloudFormationDeployOperator
from bp_aws.params import aws_conn_id_param, fleet_slug_param, fleet_stage_param
from bp_aws.sensors.ssm_parameters import SsmParameterSensor
from include import fleet_config, fleet_provision

log = logging.getLogger("bp.gpu_fleet_provision")
AWS = "{{ params.aws_conn_id }}"
REQUEST = "ti.xcom_pull(task_ids='validate_request')"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one run at a time: a fleet's stacks are never changed by two runs
    doc_md=__doc__,
    tags=["platform", "fleet", "cloudformation"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "fleet_stage": fleet_stage_param("production applies and every destroy wait for an approval in the UI."),
        "fleet_slug": fleet_slug_param("The fleet, as created in the admin UI, e.g. `gpu-default`."),
        "action": Param(
            "apply",
            type="string",
            enum=list(fleet_provision.ACTIONS),
            title="Action",
            description="apply: create or update the fleet from its desired_config; destroy: delete the fleet stack.",
        ),
        "config_wait_minutes": Param(
            0,
            type="integer",
            minimum=fleet_provision.CONFIG_WAIT_MINUTES_BOUNDS[0],
            maximum=fleet_provision.CONFIG_WAIT_MINUTES_BOUNDS[1],
            title="Wait for desired_config (minutes)",
            description="When the fleet was just created in the admin UI: how long to wait for its desired_config.",
        ),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def gpu_fleet_provision():
    @task
    def validate_request(params: dict | None = None) -> dict:
        """Domain checks on the params, before any AWS call."""
        try:
            request = fleet_provision.FleetRequest.from_params(params)
        except fleet_provision.InvalidRequest as error:
            raise AirflowFailException(f"Invalid request: {error}. Nothing was changed.") from error
        log.info("Request: %s", request.as_dict())
        return request.as_dict()

    @task.branch
    def action_path(request: dict) -> str:
        return "wait_for_desired_config" if request["action"] == "apply" else "check_fleet_idle"

    @task
    def read_desired_config(request: dict, params: dict | None = None) -> dict:
        """Parse and validate the config against the templates catalogue."""
        from bp_aws.hooks.ssm_parameters import SsmParameterHook

        name = request["desired_config_parameter"]
        parameter = SsmParameterHook(aws_conn_id=params["aws_conn_id"]).require(name)
        try:
            config = fleet_config.parse_desired_config(parameter["Value"], source=name)
        except fleet_config.InvalidFleetConfig as error:
            raise AirflowFailException(f"{error}. Fix it in the admin UI and run again; nothing was changed.") from None
        log.info("desired_config version %s: %s", parameter["Version"], config.as_dict())
        return config.as_dict()

    @task
    def check_ami_pointer(request: dict, params: dict | None = None) -> str:
        from bp_aws.hooks.ssm_parameters import SsmParameterHook

        pointer = SsmParameterHook(aws_conn_id=params["aws_conn_id"]).get(request["ami_parameter"])
        problem = fleet_provision.ami_pointer_problem(pointer, fleet_provision.FleetRequest.from_params(request))
        if problem:
            raise AirflowFailException(f"Can't provision the fleet: {problem}. Nothing was changed.")
        log.info("%s names %s", request["ami_parameter"], pointer["Value"])
        return pointer["Value"]

    @task.branch
    def approval_path(request: dict) -> str:
        if request["apply_needs_approval"]:
            log.info("Production fleet: waiting for an approval in the Airflow UI")
            return "approve_apply"
        return "package_function"

    @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
    def package_function(request: dict, params: dict | None = None) -> dict:
        """Upload the scale-to-zero function's zip under a key named by its sha256."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from include import resource_names

        s3 = S3Hook(aws_conn_id=params["aws_conn_id"])
        bucket = resource_names.logs_bucket(s3.account_id)
        package = fleet_provision.function_package()
        if s3.check_for_key(package.key, bucket):
            log.info("s3://%s/%s is already there", bucket, package.key)
        else:
            s3.load_bytes(package.body, package.key, bucket)
            log.info("Uploaded s3://%s/%s (%d bytes)", bucket, package.key, len(package.body))
        return fleet_provision.shared_stack_parameters(request["fleet_stage"], bucket, package.key)

    @task
    def fleet_stack_parameters(request: dict, config: dict, shared: dict) -> dict:
        return fleet_provision.fleet_stack_parameters(
            request["fleet_stage"],
            request["fleet_slug"],
            fleet_config.FleetConfig.from_dict(config),
            shared["ScaleToZeroTopicArn"],
        )

    @task
    def verify_fleet(request: dict, config: dict, shared: dict, outputs: dict, params: dict | None = None) -> dict:
        """The deployed ASG, policies and alarms must say what the config says."""
        from bp_aws.hooks.ami import AmiHook
        from bp_aws.hooks.autoscaling import AutoScalingHook
        from bp_aws.hooks.cloudwatch import AlarmHook

        conn = params["aws_conn_id"]
        autoscaling = AutoScalingHook(aws_conn_id=conn)
        group_name = outputs["AutoScalingGroupName"]
        alarm_keys = ("QueueEmptyAlarmName", "JobsWaitingAtZeroAlarmName")
        found = AlarmHook(aws_conn_id=conn).describe_alarms([outputs[key] for key in alarm_keys])
        problems = fleet_provision.fleet_drift(
            fleet_config.FleetConfig.from_dict(config),
            fleet_provision.FleetRequest.from_params(request),
            group=autoscaling.describe_group(group_name),
            policies=autoscaling.describe_policies(group_name),
            alarms={key: found.get(outputs[key]) for key in alarm_keys},
            image_id=AmiHook(aws_conn_id=conn).launch_template_image(
                outputs["LaunchTemplateId"], outputs["LaunchTemplateVersion"]
            ),
            topic_arn=shared["ScaleToZeroTopicArn"],
        )
        if problems:
            raise AirflowFailException(
                f"Stack {request['fleet_stack']} deployed, but the fleet does not match its config: "
                f"{'; '.join(problems)}. Nothing was rolled back; run again or inspect the stack."
            )
        log.info("Fleet %s matches its config: %s", group_name, config)
        return {**outputs, "verified": True}

    @task
    def check_fleet_idle(request: dict, params: dict | None = None) -> str:
        """Destroying a fleet with instances would kill running jobs: it must be at 0 first."""
        from bp_aws.hooks.autoscaling import AutoScalingHook

        group = AutoScalingHook(aws_conn_id=params["aws_conn_id"]).describe_group_or_none(request["auto_scaling_group"])
        blockers = fleet_provision.destroy_blockers(group)
        if blockers:
            raise AirflowFailException(
                f"Can't destroy {request['fleet_stack']}: {request['auto_scaling_group']} is not at 0 "
                f"({'; '.join(blockers)}). Let it scale to zero (or set its desired capacity to 0) "
                "and run again; nothing was changed."
            )
        return "no instances" if group else "no Auto Scaling group"

    request = validate_request()
    path = action_path(request)

    # --- apply ---------------------------------------------------------------------
    wait_for_config = SsmParameterSensor(
        task_id="wait_for_desired_config",
        aws_conn_id=AWS,
        name="{{ " + REQUEST + "['desired_config_parameter'] }}",
        max_wait_seconds="{{ params.config_wait_minutes * 60 }}",
        poke_interval=15,
        deferrable=True,
    )
    config = read_desired_config(request)
    ami_checked = check_ami_pointer(request)
    approve_apply = ApprovalOperator(
        task_id="approve_apply",
        subject="Apply a production GPU fleet configuration?",
        body=(
            "Stack **{{ " + REQUEST + "['fleet_stack'] }}** would be created or updated from "
            "`{{ " + REQUEST + "['desired_config_parameter'] }}`: "
            "{{ ti.xcom_pull(task_ids='read_desired_config') }}. The change set is logged by deploy_fleet_stack."
        ),
        response_timeout=timedelta(days=2),
    )
    shared_parameters = package_function(request)
    deploy_shared = CloudFormationDeployOperator(
        task_id="deploy_shared_stack",
        aws_conn_id=AWS,
        stack_name="{{ " + REQUEST + "['shared_stack'] }}",
        template_file=str(fleet_provision.SHARED_TEMPLATE),
        parameters=shared_parameters,
        tags=fleet_provision.stack_tags("{{ params.fleet_stage }}"),
        deferrable=True,
        waiter_delay=10,
    )
    deploy_fleet = CloudFormationDeployOperator(
        task_id="deploy_fleet_stack",
        aws_conn_id=AWS,
        stack_name="{{ " + REQUEST + "['fleet_stack'] }}",
        template_file=str(fleet_provision.FLEET_TEMPLATE),
        parameters=fleet_stack_parameters(request, config, deploy_shared.output),
        tags=fleet_provision.stack_tags("{{ params.fleet_stage }}", "{{ params.fleet_slug }}"),
        deferrable=True,
        waiter_delay=10,
    )
    path >> wait_for_config >> config >> ami_checked >> approval_path(request) >> [approve_apply, shared_parameters]
    approve_apply >> shared_parameters
    verify_fleet(request, config, deploy_shared.output, deploy_fleet.output)

    # --- destroy -------------------------------------------------------------------
    idle = check_fleet_idle(request)
    approve_destroy = ApprovalOperator(
        task_id="approve_destroy",
        subject="Destroy a GPU fleet?",
        body=(
            "Stack **{{ " + REQUEST + "['fleet_stack'] }}** and everything in it (ASG, launch template, "
            "alarms, worker role, log group) would be deleted. The ASG is at 0 instances."
        ),
        response_timeout=timedelta(days=2),
    )
    delete_fleet = CloudFormationDeleteStackOperator(
        task_id="delete_fleet_stack",
        aws_conn_id=AWS,
        stack_name="{{ " + REQUEST + "['fleet_stack'] }}",
        deferrable=True,
        waiter_delay=10,
    )
    path >> idle >> approve_destroy >> delete_fleet


gpu_fleet_provision()
