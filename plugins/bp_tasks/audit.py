"""Immutable audit records in the logs bucket, shared by every DAG that changes a fleet
(rollouts, remediations, dev-node lifecycle events): written once with
``If-None-Match: *``, so a re-run or a cleared task never replaces one, and POSTed
(signed) to the backend's ops endpoint when the ``bp_asset_ops`` connection exists.
Rollouts and AMI changes are also marked on the GPU fleets dashboard (:func:`mark_change`)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("bp.audit")

#: The http connection of the backend's ops endpoint (seed 004's audit logging).
ASSET_OPS_CONN = "bp_asset_ops"
ASSET_OPS_ENDPOINT = "/ops/comfyui-assets/sync-logs"


def write_record(key: str, record: dict[str, Any], aws_conn_id: str, *, post: bool = True) -> str:
    """Write ``record`` as one JSON line at ``key`` of the logs bucket, once; return its URI."""
    from botocore.exceptions import ClientError

    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.naming import platform

    body = (json.dumps(record, sort_keys=True, default=str) + "\n").encode()
    s3 = OwnBucketsS3Hook(aws_conn_id=aws_conn_id)
    bucket = platform.logs_bucket(s3.account_id)
    try:
        s3.conn.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/x-ndjson")
        log.info("Audit record s3://%s/%s: %s", bucket, key, body.decode().strip())
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
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
