"""Immutable audit records in the logs bucket, shared by every DAG that changes a fleet
(rollouts, remediations, dev-node lifecycle events): written once with
``If-None-Match: *``, so a re-run or a cleared task never replaces one, and POSTed
(signed) to the backend's ops endpoint when the ``bp_asset_ops`` connection exists."""

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
