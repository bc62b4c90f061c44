"""The TaskFlow tasks of ``gpu_bundle_rollout``: AWS calls through the project's hooks,
decisions in :mod:`include.bundle_rollout`."""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

from include import ami_build, bundle_rollout, fleet_config, pointers, resource_names, ssm_paths
from include.alerts import Alert

log = logging.getLogger("bp.gpu_bundle_rollout")

#: A held lock whose run is in one of these states refuses a second rollout.
LIVE_RUN_STATES = ("queued", "running")
#: Warmup for a fleet without a desired_config (seed 004's instance refresh example).
DEFAULT_WARMUP_SECONDS = 300


def _ssm(params: dict):
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    return SsmParameterHook(aws_conn_id=params["aws_conn_id"])


def _autoscaling(params: dict):
    from bp_aws.hooks.autoscaling import AutoScalingHook

    return AutoScalingHook(aws_conn_id=params["aws_conn_id"])


def _run_command(params: dict):
    from bp_aws.hooks.run_command import RunCommandHook

    return RunCommandHook(aws_conn_id=params["aws_conn_id"])


def _task_states(ti: Any, run_id: str) -> dict[str, str]:
    """task_id -> state of every task in this run, as the scheduler has them now."""
    return ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})


def _in_service(group: dict[str, Any]) -> list[str]:
    return sorted(i["InstanceId"] for i in group["Instances"] if i["LifecycleState"] == "InService")


@task
def check_bundle(request: dict, params: dict | None = None) -> str:
    """The manifest is valid and every asset is in the bucket at its size, before the
    pointer moves."""
    from bp_aws.bundles import check_bundle_in_bucket

    bucket = _ssm(params).require(request["models_bucket_parameter"])["Value"]
    try:
        bundle = check_bundle_in_bucket(params["aws_conn_id"], bucket, request["bundle_prefix"])
    except ami_build.MissingInputs as error:
        raise AirflowFailException(f"Can't roll out: {error}. The pointer was not moved; nothing changed.") from None
    message = f"bundle {bundle.bundle_id} ({bundle.name}): {len(bundle.assets)} asset(s), all present at their size"
    log.info(message)
    return message


@task
def acquire_lock(request: dict, params: dict | None = None, run_id: str | None = None, ti=None) -> str:
    """Create the fleet's rollout lock (SSM refuses to create an existing parameter); a
    lock left by a run that has ended is taken over."""
    from botocore.exceptions import ClientError

    ssm = _ssm(params)
    value = bundle_rollout.lock_value(run_id, request["bundle_id"])
    try:
        ssm.conn.put_parameter(Name=request["lock"], Value=value, Type="String", Overwrite=False)
        log.info("Holding %s for this rollout", request["lock"])
        return request["lock"]
    except ClientError as error:
        if error.response["Error"]["Code"] != "ParameterAlreadyExists":
            raise
    holder = bundle_rollout.lock_holder(ssm.require(request["lock"])["Value"])
    if holder.get("run_id") == run_id:
        log.info("This run already holds %s (a cleared task ran again)", request["lock"])
        return request["lock"]
    try:
        state = ti.get_dagrun_state(dag_id=ti.dag_id, run_id=holder["run_id"])
    except Exception:  # the holder run is gone (deleted): the lock is stale
        state = "gone"
    if state in LIVE_RUN_STATES:
        raise AirflowFailException(
            f"Refused: rollout {holder['run_id']} (bundle {holder.get('bundle_id')}) is {state} on "
            f"{request['fleet_stage']}/{request['fleet_slug']}. One rollout per fleet at a time; this run "
            "changed nothing. Run again when it has ended."
        )
    log.warning("Taking over %s from run %s, which is %s", request["lock"], holder["run_id"], state)
    ssm.conn.put_parameter(Name=request["lock"], Value=value, Type="String", Overwrite=True)
    return request["lock"]


@task
def read_pointer(request: dict, params: dict | None = None) -> dict:
    """The fleet's current bundle (kept for the rollback) and its warmup."""
    ssm = _ssm(params)
    pointer = ssm.get(request["pointer"])
    config = ssm.get(request["desired_config_parameter"])
    warmup = DEFAULT_WARMUP_SECONDS
    if config is not None:
        try:
            warmup = fleet_config.parse_desired_config(config["Value"], source=config["Name"]).warmup_seconds
        except fleet_config.InvalidFleetConfig as error:
            log.warning("%s; using a warmup of %s s", error, warmup)
    current = {
        "value": pointer["Value"] if pointer else None,
        "version": pointer["Version"] if pointer else 0,
        "warmup_seconds": warmup,
    }
    log.info("%s holds %s (version %s)", request["pointer"], current["value"], current["version"])
    return current


@task.branch
def strategy_path(request: dict) -> list[str]:
    if request["strategy"] == "pointer_only":
        log.info("pointer_only: nodes install %s at their next boot", request["bundle_prefix"])
        return []
    return {"dev_node": ["apply_on_dev_node"], "refresh": ["fleet_has_instances"], "bake_and_refresh": ["bake_ami"]}[
        request["strategy"]
    ]


@task
def check_dev_node(request: dict, command_id: str, params: dict | None = None, run_id: str | None = None) -> str:
    """Keep the installer's output in the logs bucket, then ask the node what it runs."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    instance = request["instance_id"]
    hook = _run_command(params)
    invocation = hook.invocations(command_id, [instance])[instance]
    s3 = S3Hook(aws_conn_id=params["aws_conn_id"])
    bucket = resource_names.logs_bucket(s3.account_id)
    key = resource_names.asset_sync_key(request["fleet_stage"], request["fleet_slug"], run_id, instance)
    output = {
        "command_id": command_id,
        "instance_id": instance,
        "status": invocation.get("Status"),
        "stdout": invocation.get("StandardOutputContent", ""),
        "stderr": invocation.get("StandardErrorContent", ""),
    }
    s3.load_string(json.dumps(output, indent=2), key, bucket, replace=True)
    log.info(
        "Installer output on %s (%s) kept at s3://%s/%s:\n%s", instance, output["status"], bucket, key, output["stdout"]
    )
    _require_bundle(request, [instance], params)
    return f"{instance} runs bundle {request['bundle_id']}"


def _require_bundle(request: dict, instance_ids: list[str], params: dict) -> None:
    reports = _run_command(params).run_and_collect(request["status_document"], instance_ids, comment="bundle status")
    problems = bundle_rollout.node_report_problems(reports, request["bundle_id"])
    if problems:
        raise AirflowFailException(f"Nodes do not run bundle {request['bundle_id']}: {'; '.join(problems)}")
    log.info("%d node(s) report bundle %s: %s", len(instance_ids), request["bundle_id"], ", ".join(instance_ids))


@task.short_circuit(ignore_downstream_trigger_rules=False, trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def fleet_has_instances(request: dict, params: dict | None = None) -> bool:
    group = _autoscaling(params).describe_group_or_none(request["auto_scaling_group"])
    if group is None:
        raise AirflowFailException(
            f"{request['auto_scaling_group']} does not exist: provision the fleet with gpu_fleet_provision first"
        )
    if not group["Instances"]:
        log.info(
            "%s has no instances: nothing to refresh; instances that scale from zero boot with %s",
            request["auto_scaling_group"],
            request["bundle_prefix"],
        )
        return False
    return True


@task
def refresh_preferences(request: dict, current: dict) -> dict:
    return bundle_rollout.refresh_preferences(request, current["warmup_seconds"])


@task
def verify_fleet_bundle(request: dict, params: dict | None = None) -> str:
    """Every InService node must report the new bundle."""
    instances = _in_service(_autoscaling(params).describe_group(request["auto_scaling_group"]))
    _require_bundle(request, instances, params)
    return f"{len(instances)} node(s) run bundle {request['bundle_id']}"


@task(trigger_rule=TriggerRule.ONE_FAILED)
def roll_back(
    request: dict, current: dict | None, params: dict | None = None, ti=None, run_id: str | None = None
) -> dict:
    """Undo what this run changed and alert; ``rollout_outcome`` ends the run failed."""
    states = _task_states(ti, run_id)
    failed = sorted(task_id for task_id, state in states.items() if state == "failed")
    undone: list[str] = []
    if current is not None:
        ssm = _ssm(params)
        try:
            outcome = pointers.restore(
                ssm.get,
                ssm.put,
                name=request["pointer"],
                previous=current["value"],
                written=ti.xcom_pull(task_ids="move_pointer"),
            )
            if "restored" in outcome:
                undone.append(outcome)
        except pointers.PointerMoved as error:
            undone.append(f"the pointer was NOT restored: {error}")
    back_refresh_id = None
    refresh_id = ti.xcom_pull(task_ids="start_refresh")
    if refresh_id:
        steps, back_refresh_id = _undo_refresh(request, current, refresh_id, params)
        undone += steps
    paragraph = bundle_rollout.failure_summary(request, failed, undone)
    from bp_aws.notifiers.ops_alert import send_alert

    send_alert(
        Alert(
            severity="critical",
            title=f"Bundle rollout failed on {request['fleet_stage']}/{request['fleet_slug']}",
            dimensions={"fleet": request["fleet_slug"]},
            detail=paragraph,
        ),
        stage=request["fleet_stage"],
        aws_conn_id=params["aws_conn_id"],
    )
    log.error(paragraph)
    return {"undone": undone, "paragraph": paragraph, "back_refresh_id": back_refresh_id}


def _undo_refresh(request: dict, current: dict | None, refresh_id: str, params: dict) -> tuple[list[str], str | None]:
    """Cancel this run's refresh; with auto_rollback, refresh the nodes it replaced back
    onto the restored bundle (AWS can't roll back a refresh whose AMI comes from SSM)."""
    autoscaling = _autoscaling(params)
    group = request["auto_scaling_group"]
    undone = []
    refresh = next(iter(autoscaling.describe_instance_refreshes(group, refresh_id)), None)
    if refresh and refresh["Status"] in ("Pending", "InProgress", "Baking"):
        autoscaling.cancel_instance_refresh(group)
        autoscaling.get_waiter("instance_refresh_ended").wait(
            AutoScalingGroupName=group, InstanceRefreshIds=[refresh_id], WaiterConfig={"Delay": 2, "MaxAttempts": 150}
        )
        undone.append(f"the instance refresh {refresh_id} was cancelled at {refresh.get('PercentageComplete', 0)}%")
    replaced = refresh is not None and (refresh.get("PercentageComplete") or 0) > 0
    if not (request["auto_rollback"] and replaced and current and current["value"]):
        return undone, None
    again = autoscaling.start_instance_refresh(
        group, bundle_rollout.refresh_preferences(request, current["warmup_seconds"])
    )
    undone.append(f"the replaced nodes were refreshed back onto {current['value']} (instance refresh {again})")
    return undone, again


@task.short_circuit(ignore_downstream_trigger_rules=False)
def refreshing_back(rolled_back: dict) -> bool:
    return bool(rolled_back["back_refresh_id"])


@task(trigger_rule=TriggerRule.ALL_DONE)
def release_lock(request: dict, params: dict | None = None, run_id: str | None = None) -> str:
    """Delete the lock if this run holds it (never another run's)."""
    ssm = _ssm(params)
    lock = ssm.get(request["lock"])
    if lock is None or bundle_rollout.lock_holder(lock["Value"]).get("run_id") != run_id:
        return "this run holds no lock"
    ssm.conn.delete_parameter(Name=request["lock"])
    return f"released {request['lock']}"


@task(trigger_rule=TriggerRule.ALL_DONE)
def record_audit(request: dict, current: dict | None, params: dict | None = None, ti=None, dag_run=None) -> str:
    """One immutable record per rollout: written once (If-None-Match), never replaced."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from botocore.exceptions import ClientError

    run_id = dag_run.run_id
    states = _task_states(ti, run_id)
    states = {task_id: state for task_id, state in sorted(states.items()) if task_id != ti.task_id}
    result = "failed" if any(state in ("failed", "upstream_failed") for state in states.values()) else "success"
    record = bundle_rollout.audit_record(
        request,
        run_id=run_id,
        triggered_by=dag_run.triggering_user_name,
        from_bundle=current["value"] if current else None,
        result=result,
        started_at=dag_run.start_date.isoformat() if dag_run.start_date else "",
        ended_at=datetime.now(UTC).isoformat(),
        task_states=states,
        rolled_back=(ti.xcom_pull(task_ids="roll_back") or {}).get("undone", []),
    )
    body = (json.dumps(record, sort_keys=True) + "\n").encode()
    s3 = S3Hook(aws_conn_id=params["aws_conn_id"])
    bucket = resource_names.logs_bucket(s3.account_id)
    key = resource_names.rollout_audit_key(request["fleet_stage"], request["fleet_slug"], run_id)
    try:
        s3.conn.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/x-ndjson")
        log.info("Audit record s3://%s/%s: %s", bucket, key, body.decode().strip())
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
        log.info("s3://%s/%s was already written by an earlier try: it stays as it is", bucket, key)
    _post_to_backend(body, params)
    return f"s3://{bucket}/{key}"


@task(trigger_rule=TriggerRule.ALL_DONE)
def rollout_outcome(request: dict, ti=None, run_id: str | None = None) -> str:
    """The run's verdict, as its last task: Airflow judges a run by its leaves, and the
    bookkeeping before this one succeeds even when the rollout did not."""
    states = _task_states(ti, run_id)
    failed = sorted(task_id for task_id, state in states.items() if state in ("failed", "upstream_failed"))
    if failed:
        rolled_back = ti.xcom_pull(task_ids="roll_back") or {}
        raise AirflowFailException(rolled_back.get("paragraph") or bundle_rollout.failure_summary(request, failed, []))
    message = f"bundle {request['bundle_id']} is live on {request['fleet_stage']}/{request['fleet_slug']}"
    log.info("%s (%s)", message, request["strategy"])
    return message


def _post_to_backend(body: bytes, params: dict) -> None:
    """Seed 004's audit logging: POST the record, signed with the asset-ops secret. A
    failure is logged, not raised: the S3 record is the one that counts."""
    url = conf.get("bp", "asset_ops_api_url", fallback="")
    if not url:
        return
    if not url.startswith(("https://", "http://")):
        log.warning("[bp] asset_ops_api_url %r is not an http(s) URL: the audit record was not POSTed", url)
        return
    from airflow.providers.amazon.aws.hooks.secrets_manager import SecretsManagerHook

    secret = SecretsManagerHook(aws_conn_id=params["aws_conn_id"]).get_secret(ssm_paths.asset_ops_secret())
    mask_secret(secret)
    headers = bundle_rollout.signature_headers(body, secret, int(datetime.now(UTC).timestamp()))
    endpoint = url.rstrip("/") + "/ops/comfyui-assets/sync-logs"
    request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - http(s) only, checked above
            log.info("Audit record POSTed to the backend: HTTP %s", response.status)
    except OSError as error:
        log.warning("Could not POST the audit record to the backend (%s); it is in S3", error)
