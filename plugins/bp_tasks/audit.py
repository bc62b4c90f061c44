"""Immutable audit records in the logs bucket, shared by every DAG that changes a fleet
(rollouts, remediations, dev-node lifecycle events): written once with
``If-None-Match: *``, so a re-run or a cleared task never replaces one, and POSTed
(signed) to the backend's ops endpoint when the ``bp_asset_ops`` connection exists.
Rollouts and AMI changes are also marked on the GPU fleets dashboard (:func:`mark_change`).
A fleet's rollout records are read back here too: the rollback of a rollout starts from
its record (:func:`rollout_record`, :func:`rollback_refusal`)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from include.naming.fleet import Fleet
from include.rollouts import rollback

log = logging.getLogger("bp.audit")

#: The http connection of the backend's ops endpoint (seed 004's audit logging).
ASSET_OPS_CONN = "bp_asset_ops"
ASSET_OPS_ENDPOINT = "/ops/comfyui-assets/sync-logs"


def write_record(key: str, record: dict[str, Any], aws_conn_id: str, *, post: bool = True) -> str:
    """Write ``record`` as one JSON line at ``key`` of the logs bucket, once; return its URI."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.naming import platform

    body = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    s3 = OwnBucketsS3Hook(aws_conn_id=aws_conn_id)
    bucket = platform.logs_bucket(s3.account_id)
    if s3.put_object(bucket, key, body, "application/x-ndjson", only_new=True):
        log.info("Audit record s3://%s/%s: %s", bucket, key, body.decode().strip())
    else:
        log.info("s3://%s/%s was already written by an earlier try: it stays as it is", bucket, key)
    if post:
        post_to_backend(body, aws_conn_id)
    return f"s3://{bucket}/{key}"


def post_to_backend(body: bytes, aws_conn_id: str) -> None:
    """POST a record to the backend, signed with the asset-ops secret, through the http
    connection ``bp_asset_ops`` (none configured: the S3 record only). A failure is
    logged, not raised: the S3 record is the one that counts."""
    from airflow.providers.amazon.aws.hooks.secrets_manager import SecretsManagerHook
    from airflow.providers.http.hooks.http import HttpHook
    from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException
    from airflow.sdk.log import mask_secret
    from requests.exceptions import RequestException

    from include.naming import platform
    from include.rollouts.audit import signature_headers

    hook = HttpHook(method="POST", http_conn_id=ASSET_OPS_CONN)
    try:
        hook.get_connection(ASSET_OPS_CONN)
    except AirflowNotFoundException:
        log.info("No %s connection: the audit record is in S3 only", ASSET_OPS_CONN)
        return
    secret = SecretsManagerHook(aws_conn_id=aws_conn_id).get_secret(platform.asset_ops_secret())
    mask_secret(secret)
    headers = signature_headers(body, secret, int(datetime.now(UTC).timestamp()))
    try:
        response = hook.run(ASSET_OPS_ENDPOINT, data=body, headers=headers, extra_options={"timeout": 10})
        log.info("Audit record POSTed to the backend: HTTP %s", response.status_code)
    except (RequestException, AirflowException) as error:
        log.warning("Could not POST the audit record to the backend (%s); it is in S3", error)


def mark_change(kind: str, stage: str, fleet: str, text: str, dag_run) -> bool:
    """Mark a fleet change on the GPU fleets dashboard: a ``bp_change`` point in the
    telemetry bucket through ``influxdb_default`` (none configured: the audit record only).
    A failed write is logged, not raised: the change itself is done and recorded."""
    from influxdb_client.rest import ApiException
    from urllib3.exceptions import HTTPError

    from bp_data.influx import write_points
    from include.observability.catalogue import TELEMETRY_BUCKET
    from include.observability.changes import change_point

    point = change_point(kind, stage, fleet, text, dag_run.run_id, dag_run.run_after)
    try:
        written = write_points([point], bucket=TELEMETRY_BUCKET)
    except (ApiException, HTTPError, OSError) as error:
        log.warning("Could not mark the %s of %s/%s on the dashboards (%s)", kind, stage, fleet, error)
        return False
    if written:
        log.info("Marked on the GPU fleets dashboard: %s %s/%s: %s", kind, stage, fleet, text)
    else:
        log.info("No InfluxDB connection (influxdb_default): the %s is in the audit record only", kind)
    return written


def mark_rollout(rollout, result: str, dag_run) -> bool:
    """A rollout (or the rollback a ``rollback_of`` names) and how it ended, on the dashboards."""
    kind, fleet = "rollback" if rollout.rollback_of else "rollout", rollout.fleet
    return mark_change(kind, fleet.stage, fleet.slug, f"{kind} of bundle {rollout.bundle_id}: {result}", dag_run)


def rollout_record(fleet: Fleet, run_id: str, aws_conn_id: str) -> dict[str, Any] | None:
    """The audit record of rollout ``run_id`` of ``fleet``, or None."""
    return next(iter(rollout_records(fleet, aws_conn_id, key=fleet.rollout_audit_key(run_id))), None)


def rollout_records(fleet: Fleet, aws_conn_id: str, *, key: str | None = None) -> list[dict[str, Any]]:
    """The fleet's rollout audit records (the one at ``key`` when given)."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.naming import platform

    s3 = OwnBucketsS3Hook(aws_conn_id=aws_conn_id)
    bucket = platform.logs_bucket(s3.account_id)
    keys = [key] if key else s3.list_keys(bucket, prefix=fleet.rollout_audit_prefix)
    found = []
    for name in keys:
        if not s3.check_for_key(name, bucket):
            continue
        found += [json.loads(line) for line in s3.read_key(name, bucket).splitlines() if line.strip()]
    return found


def rollback_refusal(
    fleet: Fleet,
    run_id: str,
    record: dict[str, Any] | None,
    pointer: str | None,
    aws_conn_id: str,
    going_to: str | None = None,
) -> str | None:
    """Why rollout ``run_id`` (``record``: :func:`rollout_record`) can't be rolled back now
    (:func:`include.rollouts.rollback.refusal`), naming who moved the pointer when it
    moved; None when it can."""
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    moved_by = "someone"
    if record is not None and pointer != record.get("to_bundle"):
        history = SsmParameterHook(aws_conn_id=aws_conn_id).history(fleet.active_bundle)
        moved_by = rollback.pointer_writer(rollout_records(fleet, aws_conn_id), pointer, history)
    return rollback.refusal(fleet, run_id, record, pointer, moved_by, going_to)
