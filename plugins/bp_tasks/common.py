"""What several task modules share: a domain refusal as a failed task that says what
was (not) changed, the run's task states, and a bundle checked where it lives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException

from include.errors import InvalidRequest

T = TypeVar("T")
#: Task states after which a run can no longer succeed.
FAILED_STATES = ("failed", "upstream_failed")


def validated(build: Callable[[dict[str, Any]], T], params: dict[str, Any], unchanged: str) -> T:
    """``build(params)``, or a failed task (no retry) with one line naming the param and
    the rule, and ``unchanged`` (e.g. "Nothing was changed.")."""
    try:
        return build(params)
    except InvalidRequest as error:
        raise AirflowFailException(f"Invalid request: {error}. {unchanged}") from None


def task_states(ti: Any, run_id: str) -> dict[str, str]:
    """task_id -> state of every task in this run, as the scheduler has them now."""
    return ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})


def check_bundle_in_bucket(aws_conn_id: str, bucket: str, bundle_id: str, unchanged: str):
    """:func:`include.bundles.check_bundle` over S3 (the manifest read, every asset HEADed),
    or a failed task listing every problem and ``unchanged``."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from include.bundles import BundleIncomplete, check_bundle

    s3 = S3Hook(aws_conn_id=aws_conn_id)
    try:
        return check_bundle(
            lambda key: s3.get_key(key, bucket).get()["Body"].read(),
            lambda key: (s3.head_object(key, bucket) or {}).get("ContentLength"),
            bucket,
            bundle_id,
        )
    except BundleIncomplete as error:
        raise AirflowFailException(f"{error}. {unchanged}") from None
