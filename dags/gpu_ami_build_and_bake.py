"""
### GPU AMI build and bake: one audited run from Packer to the fleet's AMI pointer

Replaces the `build-ami.yml` and `bake-ami.yml` workflows (seed 004) and the hand steps after them:

1. **validate_request** (no AWS call) → **resolve_inputs** (SSM) → **check_bundle**;
2. **plan_build**: the fingerprint of the inputs (base image, bundle manifest, Packer files, `gpu_worker`):
   an image with the same one is **reused** (no Packer), or, already the fleet's, the run ends in
   **report_unchanged** (nothing pruned either). `force_build` builds anyway;
3. **packer_build** → **wait_for_image** (or **reuse_image**) → **check_image** (provenance);
4. **smoke_test_image**: one instance of it (fleet subnet, worker profile) passes status checks and
   `bp-ami-smoke-<stage>` (GPU/driver, CUDA, ComfyUI, `gpu_worker`, baked bundle; output in `s3://bp-logs-<account>/`
   `ami-smoke/`), then is terminated; a failed check ends the run before the pointer moves (`smoke_test=false`, not in
   production, skips it). A bad image: `gpu_ami_revoke`;
5. **approve_promotion** (production: a second person's Approve) → **acquire_lock** →
   **promote_ami**: `/bp/ami/fleets/<stage>/<slug>` (DataType `aws:ec2:image`), only with a
   valid approval, if nobody changed it since step 1, never to a revoked image; **mark_promotion**;
6. **start_instance_refresh** → **wait_for_instance_refresh** (when asked); a failed refresh →
   **restore_previous_ami** (unless revoked since); **promoted** → **apply_ami_retention**; **release_lock** always.

Modes: `base` (Ubuntu, driver, ComfyUI, worker), `bake` (current image + active bundle), `base_and_bake`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from bp_aws.operators.ami import AmiRetentionOperator, PromoteAmiOperator
from bp_aws.operators.ami_smoke import AmiSmokeTestOperator
from bp_aws.operators.autoscaling import StartInstanceRefreshOperator
from bp_aws.operators.packer import PackerBuildOperator
from bp_aws.sensors.ami import ImageAvailableSensor
from bp_aws.sensors.autoscaling import InstanceRefreshSensor
from bp_tasks import fleet_lock
from bp_tasks import gpu_ami_build_and_bake as tasks
from bp_tasks import params as form
from bp_tasks.approvals import ApprovalGate, FleetChangeApproval
from include.amis import build

AWS = "{{ params.aws_conn_id }}"


@dag(
    schedule=None,
    start_date=form.PLATFORM_START,
    catchup=False,
    max_active_runs=1,  # one build at a time: a fleet's pointer is never raced by two runs
    doc_md=__doc__,
    tags=["platform", "ami", "packer"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "fleet_stage": form.fleet_stage_param("production promotions wait for an approval in the Airflow UI."),
        "fleet_slug": form.fleet_slug_param("The fleet whose image is built, e.g. `gpu-default`."),
        "mode": Param("bake", type="string", enum=list(build.MODES), title="Mode", description="See Modes below."),
        "instance_type": form.instance_type_param("Instance type", "A GPU type: builds and smoke-tests on it."),
        "smoke_test": form.switch_param(True, "Smoke test", "Boot the image and check it first (off: not production)."),
        "force_build": form.switch_param(False, "Force build", "Build even when an image from the same inputs exists."),
        "start_instance_refresh": form.switch_param(False, "Instance refresh", "Then replace the fleet's instances."),
        "aws_conn_id": form.aws_conn_id_param(),
    },
)
def gpu_ami_build_and_bake():
    request = tasks.validate_request()
    inputs = tasks.resolve_inputs(request)
    plan = tasks.plan_build(request, inputs)
    packer_build = PackerBuildOperator(
        task_id="packer_build",
        aws_conn_id=AWS,
        working_dir=str(build.PACKER_DIR),
        variables=plan["variables"],
        multiple_outputs=True,  # ami_id, artifact_id, region: each its own XCom
    )
    wait_for_image = ImageAvailableSensor(
        task_id="wait_for_image",
        aws_conn_id=AWS,
        image_id=packer_build.output["ami_id"],
        deferrable=True,
        poke_interval=15,
        **form.SAFE_TO_RETRY,
    )
    image = tasks.check_image()
    smoke_test = AmiSmokeTestOperator(
        task_id="smoke_test_image",
        aws_conn_id=AWS,
        image_id=image["ami_id"],
        document_name=request["smoke_document"],
        baked_bundle_id=inputs["bundle_id"],
        launch=image["smoke_launch"],
        output_key=image["smoke_output_key"],
        deferrable=True,
        **form.SAFE_TO_RETRY,
    )
    approve = FleetChangeApproval(
        task_id="approve_promotion",
        stage=request["fleet_stage"],
        change="the AMI was not promoted",
        subject="Promote a new GPU AMI to production?",
        body=tasks.promotion_question(request, inputs, image),
        response_timeout=timedelta(days=2),
    )
    promote = PromoteAmiOperator(
        task_id="promote_ami",
        aws_conn_id=AWS,
        name=request["ami_pointer"],
        value=image["ami_id"],
        expected_version=inputs["current_ami_version"],
        description="GPU worker AMI of the fleet (gpu_ami_build_and_bake)",
        pre_execute=(approved := ApprovalGate(approve.task_id)),  # production: a second person's Approve
    )
    refresh = StartInstanceRefreshOperator(
        task_id="start_instance_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        preferences=inputs["refresh_preferences"],
        wait_for_completion=False,
        pre_execute=approved,
    )
    refreshed = InstanceRefreshSensor(
        task_id="wait_for_instance_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        instance_refresh_id=refresh.output,
        deferrable=True,
        poke_interval=15,
        **form.SAFE_TO_RETRY,
    )
    retention = AmiRetentionOperator(
        task_id="apply_ami_retention",
        aws_conn_id=AWS,
        image_tags=request["image_tags"],
        pointer_parameter=request["ami_pointer"],
    )

    tasks.check_bundle(request, inputs) >> plan >> (choice := tasks.build_or_reuse(plan))
    choice >> [packer_build, reused := tasks.reuse_image(plan), tasks.report_unchanged(plan)]
    [packer_build >> wait_for_image, reused] >> image
    image >> tasks.smoke_test_requested(request) >> smoke_test
    lock = fleet_lock.acquire_lock(purpose="AMI promotion (and instance refresh when asked)")
    [image, smoke_test] >> tasks.promotion_path() >> [approve, lock]
    approve >> lock >> promote >> tasks.refresh_requested(request) >> refresh >> refreshed
    tasks.mark_promotion(request, image, promote.output)
    refreshed >> (restored := tasks.restore_previous_ami(request, inputs))
    [promote, refreshed] >> tasks.promoted() >> retention
    # a teardown: it runs whatever happened once the lock was taken; the work tasks' states are the verdict
    [promote, refreshed, restored, retention] >> fleet_lock.release_lock(request).as_teardown(setups=lock)


gpu_ami_build_and_bake()
