"""Task bodies of ``gpu_ami_build_and_bake``: SSM inputs, bundle and image checks, the
approval question, and the restore after a failed refresh."""

from __future__ import annotations

import logging

from airflow.sdk import TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import check_bundle_in_bucket, validated
from include.amis import build
from include.rollouts import pointers

log = logging.getLogger("bp.gpu_ami_build_and_bake")
UNCHANGED = "Nothing was built or changed."


def _request(request: dict) -> build.BuildRequest:
    return build.BuildRequest.from_params(request)


@task
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> dict:
    """Domain checks on the params, before any AWS call."""
    request = validated(build.BuildRequest.from_params, params, UNCHANGED, dag_run=dag_run, dag=dag)
    log.info("Build request for %s: %s", request.fleet, request.as_dict())
    return request.as_dict()


@task
def resolve_inputs(request: dict, params: dict | None = None, run_id: str | None = None) -> dict:
    """Read the bucket, bundle, instance profile and current AMI from SSM."""
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    hook = SsmParameterHook(aws_conn_id=params["aws_conn_id"])
    try:
        inputs = build.resolve_inputs(hook.get, _request(request))
    except build.MissingInputs as error:
        raise AirflowFailException(f"Can't build: {error}. {UNCHANGED}") from error
    variables = build.packer_variables(_request(request), inputs, run_id=run_id, region=hook.conn_region_name or "")
    log.info("Inputs: %s", inputs.as_dict())
    return {**inputs.as_dict(), "variables": variables}


@task
def check_bundle(request: dict, inputs: dict, params: dict | None = None) -> str:
    """Validate the manifest and find every asset, before paying for an instance."""
    if not _request(request).bakes_bundle:
        return "mode=base: no bundle to check"
    bundle = check_bundle_in_bucket(params["aws_conn_id"], inputs["models_bucket"], inputs["bundle_id"], UNCHANGED)
    message = f"bundle {bundle.bundle_id} ({bundle.name}): {len(bundle.assets)} asset(s), all present"
    log.info(message)
    return message


@task
def check_image(built: dict, request: dict, inputs: dict, params: dict | None = None) -> dict:
    """The image must carry this run's provenance; record the AMI it replaces."""
    from bp_aws.hooks.ami import AmiHook

    hook = AmiHook(aws_conn_id=params["aws_conn_id"])
    image = hook.describe_image(built["ami_id"])
    tags = {tag["Key"]: tag["Value"] for tag in image.get("Tags", [])}
    problems = build.tag_problems(tags, build.expected_tags(inputs["variables"]))
    if problems:
        raise AirflowFailException(
            f"AMI {built['ami_id']} was built but is not this run's image: {'; '.join(problems)}. "
            f"It was not promoted; {request['ami_pointer']} still names {inputs['current_ami']}."
        )
    hook.tag_image(built["ami_id"], {"previous_ami": inputs["current_ami"] or "none"})
    log.info("AMI %s carries this run's provenance; it replaces %s", built["ami_id"], inputs["current_ami"])
    return {"ami_id": built["ami_id"], "previous_ami": inputs["current_ami"], "name": image.get("Name", "")}


@task.branch
def promotion_path(request: dict) -> str:
    if request["needs_approval"]:
        log.info("Production image: waiting for an approval in the Airflow UI")
        return "approve_promotion"
    return "acquire_lock"


@task
def promotion_question(request: dict, inputs: dict, image: dict) -> str:
    """What the approver reads: which image replaces which, with which bundle."""
    replaces = f"replace {image['previous_ami']}" if image["previous_ami"] else "be the fleet's first image"
    bundle = f"bundle {inputs['bundle_id']}" if inputs["bundle_id"] else "no bundle (mode=base)"
    return f"AMI **{image['ami_id']}** ({image['name']}) would {replaces} in `{request['ami_pointer']}`, with {bundle}."


@task(trigger_rule=TriggerRule.ONE_FAILED)
def restore_previous_ami(request: dict, inputs: dict | None, params: dict | None = None, ti=None) -> str:
    """The refresh failed: point the fleet back at the AMI it had, if ours is still there."""
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    hook = SsmParameterHook(aws_conn_id=params["aws_conn_id"])
    try:
        outcome = pointers.restore(
            hook.get,
            hook.put,
            name=request["ami_pointer"],
            previous=(inputs or {}).get("current_ami"),
            written=ti.xcom_pull(task_ids="promote_ami"),
            data_type="aws:ec2:image",
        )
    except pointers.PointerMoved as error:
        raise AirflowFailException(str(error)) from error
    message = f"the instance refresh failed: {outcome}"
    log.info(message)
    return message


@task.short_circuit(ignore_downstream_trigger_rules=False)
def refresh_requested(request: dict) -> bool:
    return request["start_instance_refresh"]
