"""
### GPU AMI build and bake: one audited run from Packer to the fleet's AMI pointer

Replaces the `build-ami.yml` and `bake-ami.yml` workflows (seed 004) and the hand
steps after them:

1. **validate_request**: params checked, before any AWS call;
2. **resolve_inputs**: models bucket, active bundle and Packer instance profile from SSM,
   and the fleet's current AMI (kept for rollback);
3. **check_bundle**: the bundle manifest is valid and every asset is in the bucket,
   before a build instance is paid for;
4. **packer_build** → **wait_for_image** → **check_image**: Packer builds from
   `packer/comfyui-worker.pkr.hcl`; the image must be `available` and carry this
   run's provenance tags; it is tagged with the AMI it replaces;
5. **approve_promotion** (production only: Approve/Reject in the Airflow UI) →
   **promote_ami**: `/bp/ami/fleets/<stage>/<slug>` is set with DataType
   `aws:ec2:image`, only if nobody changed it since step 2;
6. **start_instance_refresh** (when asked): the fleet's ASG replaces its instances
   and the run waits in the triggerer; if the refresh fails, **restore_previous_ami**
   puts the previous AMI back;
7. **apply_ami_retention**: the fleet keeps its newest images and every image in use.

Modes: `base` (Ubuntu 22.04 + driver + ComfyUI + worker), `bake` (the fleet's current
image + its active bundle), `base_and_bake` (both in one build). One run at a time.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pendulum
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, TriggerRule, dag, task
from airflow.sdk.exceptions import AirflowFailException

from bp_aws.operators.ami import AmiRetentionOperator
from bp_aws.operators.autoscaling import StartInstanceRefreshOperator
from bp_aws.operators.packer import PackerBuildOperator
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from bp_aws.params import aws_conn_id_param, fleet_slug_param, fleet_stage_param
from bp_aws.sensors.ami import ImageAvailableSensor
from include import ami_build, pointers

log = logging.getLogger("bp.gpu_ami_build_and_bake")
AWS = "{{ params.aws_conn_id }}"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one build at a time: a fleet's pointer is never raced by two runs
    doc_md=__doc__,
    tags=["platform", "ami", "packer"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "fleet_stage": fleet_stage_param("production promotions wait for an approval in the Airflow UI."),
        "fleet_slug": fleet_slug_param("The fleet whose image is built, e.g. `gpu-default`."),
        "mode": Param(
            "bake",
            type="string",
            enum=list(ami_build.MODES),
            title="Mode",
            description="base: new base image; bake: current image + active bundle; base_and_bake: both.",
        ),
        "instance_type": Param(
            "g4dn.xlarge",
            type="string",
            pattern=ami_build.INSTANCE_TYPE_PATTERN,
            title="Build instance type",
            description="A GPU type, so the driver install is checked on real hardware.",
        ),
        "start_instance_refresh": Param(
            False,
            type="boolean",
            title="Instance refresh",
            description="After promotion, replace the fleet's instances and wait (restores the old AMI on failure).",
        ),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def gpu_ami_build_and_bake():
    @task
    def validate_request(params: dict | None = None) -> dict:
        """Domain checks on the params, before any AWS call."""
        try:
            request = ami_build.BuildRequest.from_params(params)
        except ami_build.InvalidRequest as error:
            raise AirflowFailException(f"Invalid request: {error}. Nothing was built or changed.") from error
        log.info("Build request: %s", request.as_dict())
        return request.as_dict()

    @task
    def resolve_inputs(request: dict, params: dict | None = None, run_id: str | None = None) -> dict:
        """Read the bucket, bundle, instance profile and current AMI from SSM."""
        from bp_aws.hooks.ssm_parameters import SsmParameterHook

        build = ami_build.BuildRequest(**request)
        hook = SsmParameterHook(aws_conn_id=params["aws_conn_id"])
        try:
            inputs = ami_build.resolve_inputs(hook.get, build)
        except ami_build.MissingInputs as error:
            raise AirflowFailException(f"Can't build: {error}. Nothing was built or changed.") from error
        variables = ami_build.packer_variables(build, inputs, run_id=run_id, region=hook.conn_region_name or "")
        log.info("Inputs: %s", inputs.as_dict())
        return {
            **inputs.as_dict(),
            "ami_parameter": build.ami_parameter,
            "auto_scaling_group": build.auto_scaling_group,
            "variables": variables,
        }

    @task
    def check_bundle(request: dict, inputs: dict, params: dict | None = None) -> str:
        """Validate the manifest and find every asset, before paying for an instance."""
        if not ami_build.BuildRequest(**request).bakes_bundle:
            return "mode=base: no bundle to check"
        from bp_aws.bundles import check_bundle_in_bucket

        try:
            bundle = check_bundle_in_bucket(params["aws_conn_id"], inputs["models_bucket"], inputs["bundle_prefix"])
        except ami_build.MissingInputs as error:
            raise AirflowFailException(f"{error}. Nothing was built or changed.") from error
        message = f"bundle {bundle.bundle_id} ({bundle.name}): {len(bundle.assets)} asset(s), all present"
        log.info(message)
        return message

    @task
    def check_image(built: dict, inputs: dict, params: dict | None = None) -> dict:
        """The image must carry this run's provenance; record the AMI it replaces."""
        from bp_aws.hooks.ami import AmiHook

        hook = AmiHook(aws_conn_id=params["aws_conn_id"])
        image = hook.describe_image(built["ami_id"])
        tags = {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}
        problems = ami_build.tag_problems(tags, ami_build.expected_tags(inputs["variables"]))
        if problems:
            raise AirflowFailException(
                f"AMI {built['ami_id']} was built but is not this run's image: {'; '.join(problems)}. "
                f"It was not promoted; {inputs['ami_parameter']} still names {inputs['current_ami']}."
            )
        hook.tag_image(built["ami_id"], {"previous_ami": inputs["current_ami"] or "none"})
        log.info("AMI %s carries this run's provenance; it replaces %s", built["ami_id"], inputs["current_ami"])
        return {"ami_id": built["ami_id"], "previous_ami": inputs["current_ami"], "name": image.get("Name", "")}

    @task.branch
    def promotion_path(request: dict) -> str:
        if ami_build.BuildRequest(**request).needs_approval:
            log.info("Production image: waiting for an approval in the Airflow UI")
            return "approve_promotion"
        return "promote_ami"

    @task(trigger_rule=TriggerRule.ONE_FAILED)
    def restore_previous_ami(inputs: dict | None, params: dict | None = None, ti=None) -> str:
        """The refresh failed: point the fleet back at the AMI it had, if ours is still there."""
        from bp_aws.hooks.ssm_parameters import SsmParameterHook

        promoted = ti.xcom_pull(task_ids="promote_ami")
        hook = SsmParameterHook(aws_conn_id=params["aws_conn_id"])
        try:
            message = ami_build.restore_pointer(hook.get, hook.put, inputs, promoted)
        except pointers.PointerMoved as error:
            raise AirflowFailException(str(error)) from error
        log.info(message)
        return message

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def refresh_requested(request: dict) -> bool:
        return request["start_instance_refresh"]

    request = validate_request()
    inputs = resolve_inputs(request)
    bundle_checked = check_bundle(request, inputs)

    packer_build = PackerBuildOperator(
        task_id="packer_build",
        aws_conn_id=AWS,
        working_dir=str(ami_build.PACKER_DIR),
        variables=inputs["variables"],
        multiple_outputs=True,  # ami_id, artifact_id, region: each its own XCom
    )
    wait_for_image = ImageAvailableSensor(
        task_id="wait_for_image",
        aws_conn_id=AWS,
        image_id=packer_build.output["ami_id"],
        deferrable=True,
        poke_interval=15,
    )
    image = check_image(packer_build.output, inputs)

    approve = ApprovalOperator(
        task_id="approve_promotion",
        subject="Promote a new GPU AMI to production?",
        body=(
            "AMI **{{ ti.xcom_pull(task_ids='check_image')['ami_id'] }}** "
            "({{ ti.xcom_pull(task_ids='check_image')['name'] }}) would replace "
            "{{ ti.xcom_pull(task_ids='check_image')['previous_ami'] }} in "
            "`{{ ti.xcom_pull(task_ids='resolve_inputs')['ami_parameter'] }}`, bundle "
            "{{ ti.xcom_pull(task_ids='resolve_inputs')['bundle_id'] }}."
        ),
        response_timeout=timedelta(days=2),
    )
    promote = PutSsmParameterOperator(
        task_id="promote_ami",
        aws_conn_id=AWS,
        name=inputs["ami_parameter"],
        value=image["ami_id"],
        expected_version=inputs["current_ami_version"],
        data_type="aws:ec2:image",
        description="GPU worker AMI of the fleet (gpu_ami_build_and_bake)",
        trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS,
    )
    refresh = StartInstanceRefreshOperator(
        task_id="start_instance_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=inputs["auto_scaling_group"],
        preferences={"MinHealthyPercentage": 90, "InstanceWarmup": 300, "SkipMatching": False},
        deferrable=True,
        waiter_delay=15,
    )
    retention = AmiRetentionOperator(
        task_id="apply_ami_retention",
        aws_conn_id=AWS,
        fleet_stage="{{ params.fleet_stage }}",
        fleet_slug="{{ params.fleet_slug }}",
        trigger_rule=TriggerRule.NONE_FAILED,
    )

    bundle_checked >> packer_build >> wait_for_image >> image
    path = promotion_path(request)
    image >> path >> [approve, promote]
    approve >> promote >> refresh_requested(request) >> refresh >> [restore_previous_ami(inputs), retention]


gpu_ami_build_and_bake()
