"""Task bodies of ``gpu_ami_build_and_bake``: SSM inputs, bundle and image checks, the
approval question, and the restore after a failed refresh."""

from __future__ import annotations

import logging

from airflow.sdk import TriggerRule, serde, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import check_bundle_in_bucket, handed_over, report_outcome, validated, validated_request
from gpu_worker.layout import bundle_prefix, manifest_key
from include.amis import build, fingerprint, revocation, smoke
from include.naming import platform
from include.rollouts import pointers
from include.tables import format_table

log = logging.getLogger("bp.gpu_ami_build_and_bake")
UNCHANGED = "Nothing was built or changed."


# the request travels as itself between the run's tasks: its task processes may take it
# back from XCom (Airflow refuses any class it was not told of)
serde.allow_class(build.BuildRequest)


@task
def validate_request(params: dict | None = None, ti=None, dag_run=None, dag=None) -> build.BuildRequest:
    """Domain checks on the params, before any AWS call. Every later task gets the
    request itself; the DAG's operators read its :meth:`~build.BuildRequest.wiring` keys."""
    request = validated(build.BuildRequest.from_params, params, UNCHANGED, dag_run=dag_run, dag=dag)
    log.info("Build request for %s: %s", request.fleet, request.serialize())
    return handed_over(request, ti)


@task
def resolve_inputs(request: build.BuildRequest, params: dict | None = None, run_id: str | None = None) -> dict:
    """Read the bucket, bundle, instance profile and current AMI from SSM."""
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    hook = SsmParameterHook(aws_conn_id=params["aws_conn_id"])
    try:
        inputs = build.resolve_inputs(hook.get, request)
    except build.MissingInputs as error:
        raise AirflowFailException(f"Can't build: {error}. {UNCHANGED}") from error
    variables = build.packer_variables(request, inputs, run_id=run_id, region=hook.conn_region_name or "")
    log.info("Inputs: %s", inputs.as_dict())
    return {**inputs.as_dict(), "variables": variables}


@task
def check_bundle(request: build.BuildRequest, inputs: dict, params: dict | None = None) -> str:
    """Validate the manifest and find every asset, before paying for an instance."""
    if not request.bakes_bundle:
        return "mode=base: no bundle to check"
    bundle = check_bundle_in_bucket(params["aws_conn_id"], inputs["models_bucket"], inputs["bundle_id"], UNCHANGED)
    message = f"bundle {bundle.bundle_id} ({bundle.name}): {len(bundle.assets)} asset(s), all present"
    log.info(message)
    return message


@task
def plan_build(request: build.BuildRequest, inputs: dict, params: dict | None = None) -> dict:
    """Fingerprint the build's inputs and look for an image already built from them: build
    with Packer, reuse that image, or (it is the fleet's image already) change nothing."""
    from bp_aws.hooks.ami import AmiHook

    hook = AmiHook(aws_conn_id=params["aws_conn_id"])
    base_image = _base_image(hook, request, inputs)
    digest = fingerprint_data = None
    if base_image is not None:
        manifest = _manifest(params["aws_conn_id"], inputs) if request.bakes_bundle else None
        found = fingerprint.fingerprint(request.mode, base_image, manifest, build.PACKER_DIR)
        digest, fingerprint_data = found.digest, found.as_dict()
        log.info("Inputs of the image:\n%s", format_table(("INPUT", "VALUE"), sorted(fingerprint_data.items())))
    reusable = revoked = None
    if digest is not None:
        images = hook.images_tagged({**request.image_tags, fingerprint.FINGERPRINT_TAG: digest})
        reusable, revoked = fingerprint.same_inputs(images, digest, revocation.REVOKED_TAG)
    decision = build.decide(request, digest, reusable, inputs["current_ami"], revoked)
    report_outcome(f"Decision: {decision.action}: {decision.reason}")
    return {
        "action": decision.action,
        "image_id": decision.image_id,
        "reason": decision.reason,
        "fingerprint": fingerprint_data,
        "variables": build.fingerprinted(inputs["variables"], digest, base_image),
    }


def _base_image(hook, request: build.BuildRequest, inputs: dict) -> str | None:
    """A bake's root base (its source image's ``base_image`` tag), or the Ubuntu image a
    base build starts from (the template's filter), or None when it can't be found."""
    if request.mode == "bake":
        image = hook.describe_image(inputs["current_ami"])
        return fingerprint.root_base_image(inputs["current_ami"], platform.tags_of(image))
    filters = [{"Name": key, "Values": [value]} for key, value in fingerprint.UBUNTU_FILTERS.items()]
    images = hook.images_of(fingerprint.UBUNTU_OWNER, filters)
    newest = fingerprint.newest_image(images)
    if newest is None:
        log.warning("No Ubuntu 22.04 image of Canonical's was found: the build can't be fingerprinted and runs")
    return newest


def _manifest(aws_conn_id: str, inputs: dict) -> bytes:
    from bp_aws.hooks.s3 import OwnBucketsS3Hook

    key = manifest_key(bundle_prefix(inputs["bundle_id"]))
    return OwnBucketsS3Hook(aws_conn_id=aws_conn_id).get_key(key, inputs["models_bucket"]).get()["Body"].read()


@task.branch
def build_or_reuse(plan: dict) -> str:
    return {"build": "packer_build", "reuse": "reuse_image", "unchanged": "report_unchanged"}[plan["action"]]


@task(multiple_outputs=False)
def reuse_image(plan: dict) -> dict:
    """Packer is skipped: the image built from the same inputs is the candidate."""
    log.info("%s", plan["reason"])
    return {"ami_id": plan["image_id"]}


@task
def report_unchanged(plan: dict) -> str:
    """The fleet already runs an image built from these inputs: the run ends here."""
    message = f"Unchanged: {plan['reason']}. Set force_build to build anyway."
    report_outcome(message)
    return message


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def check_image(params: dict | None = None, ti=None, run_id: str | None = None) -> dict:
    """The candidate (built now, or reused) must carry the right provenance; record the
    AMI it replaces. It joins the build and the reuse path: the request, inputs and plan
    are pulled, so that only those paths' tasks can start it."""
    from bp_aws.hooks.ami import AmiHook

    request, inputs = validated_request(ti), ti.xcom_pull(task_ids="resolve_inputs")
    plan = ti.xcom_pull(task_ids="plan_build")
    built = ti.xcom_pull(task_ids="packer_build", key="ami_id")
    ami_id = built or ti.xcom_pull(task_ids="reuse_image")["ami_id"]
    hook = AmiHook(aws_conn_id=params["aws_conn_id"])
    image = hook.describe_image(ami_id)
    tags = platform.tags_of(image)
    expected = build.expected_tags(plan["variables"], built_by_this_run=bool(built))
    problems = build.tag_problems(tags, expected)
    revoked = revocation.revocation_of(tags)
    if revoked:
        problems.append(f"it was {revoked}")
    if problems:
        raise AirflowFailException(
            f"AMI {ami_id} is not an image this run may promote: {'; '.join(problems)}. "
            f"It was not promoted; {request.fleet.ami_pointer} still names {inputs['current_ami']}."
        )
    if built:
        hook.tag_image(ami_id, {"previous_ami": inputs["current_ami"] or "none"})
    log.info("AMI %s carries the expected provenance; it replaces %s", ami_id, inputs["current_ami"])
    fleet = request.fleet
    return {
        "ami_id": ami_id,
        "previous_ami": inputs["current_ami"],
        "name": image.get("Name", ""),
        "smoke_launch": {  # the smoke instance: the fleet's subnet, group and worker profile
            "instance_type": request.instance_type,
            "subnet_id": inputs["worker_subnet_id"],
            "security_group_id": inputs["worker_security_group_id"],
            "instance_profile": fleet.worker_instance_profile,
            "tags": smoke.instance_tags(fleet, ami_id, ti.dag_id, run_id),
        },
        "smoke_output_key": fleet.ami_smoke_key(run_id),
    }


@task.short_circuit(ignore_downstream_trigger_rules=False)
def smoke_test_requested(request: build.BuildRequest) -> bool:
    if not request.smoke_test:
        log.warning("smoke_test is off for %s: the image is promoted without being booted once", request.fleet)
    return request.smoke_test


@task.branch(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def promotion_path(ti=None) -> str:
    """After the smoke test, or after the tag check when smoke_test is off: the request is
    pulled, so a run that changes nothing (its candidate tasks skipped) ends here too."""
    from bp_tasks.approvals import approval_or

    return approval_or(validated_request(ti).fleet, "approve_promotion")


@task
def promotion_question(request: build.BuildRequest, inputs: dict, image: dict) -> str:
    """What the approver reads: which image replaces which, with which bundle."""
    replaces = f"replace {image['previous_ami']}" if image["previous_ami"] else "be the fleet's first image"
    bundle = f"bundle {inputs['bundle_id']}" if inputs["bundle_id"] else "no bundle (mode=base)"
    return (
        f"AMI **{image['ami_id']}** ({image['name']}) would {replaces} in `{request.fleet.ami_pointer}`, with {bundle}."
    )


@task(trigger_rule=TriggerRule.ONE_FAILED)
def restore_previous_ami(request: build.BuildRequest, inputs: dict | None, params: dict | None = None, ti=None) -> str:
    """The refresh failed: point the fleet back at the AMI it had, if ours is still there
    and that AMI was not revoked meanwhile (a fleet never goes back to a revoked image)."""
    from bp_aws.exceptions import AwsResourceNotFound
    from bp_aws.hooks.ami import AmiHook
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    previous = (inputs or {}).get("current_ami")
    if previous:
        try:
            revoked = revocation.revocation_of(
                platform.tags_of(AmiHook(aws_conn_id=params["aws_conn_id"]).describe_image(previous))
            )
        except AwsResourceNotFound:
            revoked = "deregistered"
        if revoked:
            raise AirflowFailException(
                f"The instance refresh failed, but {previous}, the AMI the fleet had before, can't take its place: "
                f"it is {revoked}. {request.fleet.ami_pointer} was NOT pointed back and still names the new image. "
                "Build or choose another image (gpu_ami_build_and_bake), or revoke this one (gpu_ami_revoke)."
            )
    hook = SsmParameterHook(aws_conn_id=params["aws_conn_id"])
    try:
        outcome = pointers.restore(
            hook.get,
            hook.put,
            name=request.fleet.ami_pointer,
            previous=previous,
            written=ti.xcom_pull(task_ids="promote_ami"),
            data_type="aws:ec2:image",
        )
    except pointers.PointerMoved as error:
        raise AirflowFailException(str(error)) from error
    message = f"the instance refresh failed: {outcome}"
    log.info(message)
    return message


@task
def mark_promotion(request: build.BuildRequest, image: dict, written: dict, dag_run=None) -> bool:
    """The promotion as a mark on the GPU fleets dashboard, when the pointer changed."""
    from bp_tasks.audit import mark_change

    if not written.get("changed"):
        report_outcome(f"{request.fleet.ami_pointer} already named AMI {image['ami_id']}: nothing promoted")
        return False
    text = f"AMI {image['ami_id']} ({image['name']}) promoted to {request.fleet.ami_pointer}"
    marked = mark_change("ami_promotion", request.fleet.stage, request.fleet.slug, text, dag_run)
    report_outcome(text + ("; marked on the GPU fleets dashboard" if marked else "; no dashboard mark (no InfluxDB)"))
    return marked


@task.short_circuit(ignore_downstream_trigger_rules=False)
def refresh_requested(request: build.BuildRequest) -> bool:
    return request.start_instance_refresh


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def promoted() -> None:
    """The pointer moved (and the refresh, when asked, ended well): older images may be
    pruned. Skipped in a run that promoted nothing, so that run prunes nothing either; it
    takes no XCom, so nothing but the promotion can start it."""
    log.info("The fleet's pointer moved: applying the AMI retention")
