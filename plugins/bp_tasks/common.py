"""What several task modules share: a domain refusal as a failed task that says what
was (not) changed, a skip that says why, the run's task states, a bundle checked where it lives, and
Airflow's own REST API as the tasks reach it."""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.cli.airflow_client import OUTCOME_KEY
from include.errors import InvalidRequest

T = TypeVar("T")
#: Task states after which a run can no longer succeed.
FAILED_STATES = ("failed", "upstream_failed")


log = logging.getLogger("bp.tasks")


def report_outcome(*lines: str) -> None:
    """Say what the task did, as a reader wants it once the run is over (findings, files
    written, a skip's reason, the command to run next): logged, and pushed as the XCom
    ``OUTCOME_KEY`` that ``python -m include.cli.trigger ... --wait`` prints after the run,
    as the demo's summary does. Outside a task (a helper called on its own) the log is all."""
    from airflow.sdk import get_current_context

    log.info("%s", "\n".join(lines))  # one record: a table stays one block in the UI
    try:
        ti = get_current_context()["ti"]
    except RuntimeError:
        return
    ti.xcom_push(key=OUTCOME_KEY, value=list(lines))


def skipped(reason: str) -> AirflowSkipException:
    """A skip whose reason is in the task log (Airflow logs only "Skipping task.") and in
    the run's outcome: ``raise skipped("...")``."""
    report_outcome(f"Skipped: {reason}")
    return AirflowSkipException(reason)


class RequestRefused(AirflowFailException):
    """Bad input, refused by the first task: nothing was changed and no one is paged
    (the failure callbacks leave it out of the alerts)."""


def unknown_keys(conf: dict[str, Any] | None, known: Iterable[str]) -> str | None:
    """The conf keys a DAG doesn't take, each with the param it was probably meant to be."""
    known = list(known)
    unknown = sorted(set(conf or {}) - set(known))
    if not unknown:
        return None
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, known, n=1)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown conf key(s) {', '.join(named)}; this DAG takes {', '.join(known)}"


def validated(
    build: Callable[[dict[str, Any]], T],
    params: dict[str, Any],
    unchanged: str,
    *,
    dag_run: Any = None,
    dag: Any = None,
) -> T:
    """``build(params)``, or a failed task (no retry, no alert) with one line naming the
    param and the rule - a misspelt conf key included, which Airflow would otherwise
    ignore and run with the default - and ``unchanged`` (e.g. "Nothing was changed.")."""
    problem = unknown_keys(dag_run.conf if dag_run is not None else None, dag.params.keys() if dag else ())
    if problem:
        raise RequestRefused(f"Invalid request: {problem}. {unchanged}")
    problem = connection_problem(params.get("aws_conn_id"))
    if problem:
        raise RequestRefused(f"Invalid request: {problem}. {unchanged}")
    try:
        return build(params)
    except InvalidRequest as error:
        raise RequestRefused(f"Invalid request: {error}. {unchanged}") from None


def keys_read(dag: Any, task_id: str) -> set[str]:
    """The XCom keys of ``task_id`` other than its return value that the DAG's tasks take
    as arguments (``request["auto_scaling_group"]``): what it must push apart. Each push
    is a request to the api-server and a row in its database (measured under make test:
    three in four of the pushes were keys of a returned dict that no task read)."""
    from airflow.sdk.bases.xcom import BaseXCom
    from airflow.sdk.definitions.xcom_arg import XComArg

    keys = set()
    for operator in dag.tasks:
        # a mapped task's arguments are its partial() and its expand() inputs
        mapped = hasattr(operator, "expand_input")
        arguments = [operator.partial_kwargs, operator.expand_input.value] if mapped else operator
        for source, key in XComArg.iter_xcom_references(arguments):
            if source.task_id == task_id and key != BaseXCom.XCOM_RETURN_KEY:
                keys.add(key)
    return keys


def handed_over(request: T, ti: Any) -> T:
    """A validated request as the run's later tasks get it: the request itself (the first
    task's return value, through Airflow's serde) and, as XCom keys of their own, the
    names of its ``wiring()`` the DAG's operators take as ``request["auto_scaling_group"]``."""
    wiring = request.wiring()
    for key in sorted(keys_read(ti.task.dag, ti.task_id)):
        ti.xcom_push(key=key, value=wiring[key])
    return request


def connection_problem(aws_conn_id: str | None) -> str | None:
    """Why a run may not use ``aws_conn_id`` (the DAG was parsed with another allow-list,
    or the param was bypassed), or None."""
    from bp_tasks.params import allowed_aws_conn_ids

    allowed = allowed_aws_conn_ids()
    if aws_conn_id is None or aws_conn_id in allowed:
        return None
    return (
        f"aws_conn_id {aws_conn_id!r} is not one of the allowed connections ({', '.join(allowed)}; [bp] aws_conn_ids)"
    )


#: the first task of every DAG that changes a fleet: it returns the validated request
REQUEST_TASK = "validate_request"


def validated_request(ti: Any) -> Any:
    """The run's validated request (the request itself), pulled rather than passed as an XComArg.

    For the tasks that join an optional branch (an approval only production asks for)
    with ``NONE_FAILED_MIN_ONE_SUCCESS``: an XComArg makes ``validate_request`` a direct
    upstream, and its success alone would then start the join when its whole branch was
    skipped (a fleet apply would take the destroy lock and delete the stack)."""
    return ti.xcom_pull(task_ids=REQUEST_TASK)


def task_states(ti: Any, run_id: str) -> dict[str, str]:
    """task_id -> state of every task in this run, as the scheduler has them now."""
    return ti.get_task_states(dag_id=ti.dag_id, run_ids=[run_id]).get(run_id, {})


def check_bundle_in_bucket(aws_conn_id: str, bucket: str, bundle_id: str, unchanged: str):
    """:func:`include.bundles.check_bundle` over S3 (the manifest read, every asset HEADed),
    or a failed task listing every problem and ``unchanged``."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.bundles import BundleIncomplete, check_bundle

    s3 = OwnBucketsS3Hook(aws_conn_id=aws_conn_id)
    try:
        return check_bundle(
            lambda key: s3.get_key(key, bucket).get()["Body"].read(),
            lambda key: (s3.head_object(key, bucket) or {}).get("ContentLength"),
            bucket,
            bundle_id,
        )
    except BundleIncomplete as error:
        raise AirflowFailException(f"{error}. {unchanged}") from None


#: The connection to the api-server's REST API: ``host`` its URL, ``login``/``password`` a
#: service user (role ``Service`` in ``include.access``); extra ``{"insecure_http": true}``
#: allows plain http to another host (a private network), as ``--insecure-http`` does for
#: the CI client.
AIRFLOW_API_CONN = "airflow_api"


class AirflowApiUnavailable(AirflowFailException):
    """The ``airflow_api`` connection is missing or unusable: what needs it changed nothing."""


def service_user() -> str | None:
    """The ``airflow_api`` connection's user: the pipeline itself when it triggers a run."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(AIRFLOW_API_CONN).login
    except AirflowNotFoundException:
        return None


def airflow_api():
    """A REST client of this Airflow (:mod:`include.cli.airflow_client`) as the
    ``airflow_api`` connection's service user: credentials only over https, except to
    loopback or where the connection says the network is trusted."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    from include.cli.airflow_client import AirflowApiError, AirflowClient, check_transport

    try:
        conn = Connection.get(AIRFLOW_API_CONN)
    except AirflowNotFoundException:
        raise AirflowApiUnavailable(
            f"the {AIRFLOW_API_CONN} connection is not set (the api-server's URL and a service user): "
            "this task reads Airflow's own records through it"
        ) from None
    base = conn.host if "://" in (conn.host or "") else f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
    try:
        check_transport(base, insecure_http=bool(conn.extra_dejson.get("insecure_http")))
    except AirflowApiError as error:
        raise AirflowApiUnavailable(f"the {AIRFLOW_API_CONN} connection: {error}") from None
    return AirflowClient(base, username=conn.login, password=conn.password)
