"""
### GPU AMI build and bake: one audited run from Packer to the fleet's AMI pointer

Replaces the `build-ami.yml` and `bake-ami.yml` workflows (seed 004) and the hand steps after them:

1. **validate_request** (before any AWS call) → **resolve_inputs**: models bucket, active
   bundle and Packer instance profile from SSM, and the fleet's current AMI (for rollback);
2. **check_bundle**: the manifest is valid and every asset is in the bucket, before a
   build instance is paid for;
3. **packer_build** → **wait_for_image** → **check_image**: the image must be `available`
   and carry this run's provenance tags; it is tagged with the AMI it replaces;
4. **approve_promotion** (production only: Approve/Reject in the Airflow UI) →
   **acquire_lock** (the fleet's change lock) → **promote_ami**: `/bp/ami/fleets/<stage>/<slug>`
   is set (DataType `aws:ec2:image`), only if nobody changed it since step 1;
5. **start_instance_refresh** → **wait_for_instance_refresh** (when asked, in the
   triggerer); if the refresh fails, **restore_previous_ami** puts the previous AMI back;
6. **apply_ami_retention**: the fleet keeps its newest images and every image in use;
   **release_lock** whatever happened.

Modes: `base` (Ubuntu 22.04 + driver + ComfyUI + worker), `bake` (the fleet's current
image + its active bundle), `base_and_bake` (both in one build). One run at a time.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag

from bp_aws.operators.ami import AmiRetentionOperator
from bp_aws.operators.autoscaling import StartInstanceRefreshOperator
from bp_aws.operators.packer import PackerBuildOperator
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from bp_aws.sensors.ami import ImageAvailableSensor
from bp_aws.sensors.autoscaling import InstanceRefreshSensor
from bp_tasks import fleet_lock
from bp_tasks import gpu_ami_build_and_bake as tasks
from bp_tasks.approvals import FleetChangeApproval
from bp_tasks.params import (
    PLATFORM_START,
    SAFE_TO_RETRY,
    aws_conn_id_param,
    fleet_slug_param,
    fleet_stage_param,
    instance_type_param,
)
from include.amis import build

AWS = "{{ params.aws_conn_id }}"


@dag(
    schedule=None,
    start_date=PLATFORM_START,
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
            enum=list(build.MODES),
            title="Mode",
            description="base: new base image; bake: current image + active bundle; base_and_bake: both.",
        ),
        "instance_type": instance_type_param("Build instance type", "A GPU type: the driver install is checked on it."),
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
    request = tasks.validate_request()
    inputs = tasks.resolve_inputs(request)
    packer_build = PackerBuildOperator(
        task_id="packer_build",
        aws_conn_id=AWS,
        working_dir=str(build.PACKER_DIR),
        variables=inputs["variables"],
        multiple_outputs=True,  # ami_id, artifact_id, region: each its own XCom
    )
    wait_for_image = ImageAvailableSensor(
        task_id="wait_for_image",
        aws_conn_id=AWS,
        image_id=packer_build.output["ami_id"],
        deferrable=True,
        poke_interval=15,
        **SAFE_TO_RETRY,
    )
    image = tasks.check_image(packer_build.output, request, inputs)
    approve = FleetChangeApproval(
        task_id="approve_promotion",
        stage="{{ params.fleet_stage }}",
        change="the AMI was not promoted",
        subject="Promote a new GPU AMI to production?",
        body=tasks.promotion_question(request, inputs, image),
        response_timeout=timedelta(days=2),
    )
    promote = PutSsmParameterOperator(
        task_id="promote_ami",
        aws_conn_id=AWS,
        name=request["ami_pointer"],
        value=image["ami_id"],
        expected_version=inputs["current_ami_version"],
        data_type="aws:ec2:image",
        description="GPU worker AMI of the fleet (gpu_ami_build_and_bake)",
    )
    refresh = StartInstanceRefreshOperator(
        task_id="start_instance_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        preferences={"MinHealthyPercentage": 90, "InstanceWarmup": 300, "SkipMatching": False},
        wait_for_completion=False,
    )
    refreshed = InstanceRefreshSensor(
        task_id="wait_for_instance_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        instance_refresh_id=refresh.output,
        deferrable=True,
        poke_interval=15,
        **SAFE_TO_RETRY,
    )
    retention = AmiRetentionOperator(
        task_id="apply_ami_retention",
        aws_conn_id=AWS,
        image_tags=request["image_tags"],
        pointer_parameter=request["ami_pointer"],
        trigger_rule=TriggerRule.NONE_FAILED,
    )

    tasks.check_bundle(request, inputs) >> packer_build >> wait_for_image >> image
    lock = fleet_lock.acquire_lock(purpose="AMI promotion (and instance refresh when asked)")
    image >> tasks.promotion_path(request) >> [approve, lock]
    approve >> lock >> promote >> tasks.refresh_requested(request) >> refresh >> refreshed
    refreshed >> [restored := tasks.restore_previous_ami(request, inputs), retention]
    # a teardown: it runs whatever happened once the lock was taken, and the run's state
    # stays the verdict of the work tasks
    [promote, refreshed, restored, retention] >> fleet_lock.release_lock(request).as_teardown(setups=lock)


gpu_ami_build_and_bake()
