"""boto3 clients for domain code in ``include/``, built from an Airflow AWS connection.

Domain functions take a ``client(service_name)`` factory instead of hooks so they stay
testable without Airflow; this is the factory tasks hand them. The connection decides
the endpoint (the local emulator or real AWS), credentials and region.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from bp_aws.hooks.s3 import require_bucket_owner


def aws_client_factory(
    aws_conn_id: str | None = "aws_default", region_name: str | None = None, config: Any = None
) -> Callable[[str], Any]:
    """Return ``client(service)``; each service's client is built once per factory.
    ``config`` is a ``botocore.config.Config`` (retries, timeouts) for every client."""

    @cache
    def client(service: str) -> Any:
        hook = AwsBaseHook(aws_conn_id=aws_conn_id, region_name=region_name, client_type=service, config=config)
        if service == "s3":  # the platform's buckets only: each call expects this account to own them
            return require_bucket_owner(hook.conn, hook.account_id)
        return hook.conn

    return client
