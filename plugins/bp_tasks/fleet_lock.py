"""The per-fleet change lock (:mod:`include.fleets.lock`) as the DAGs' tasks take and
release it: SSM through the project's hook, run states through Airflow's task API."""

from __future__ import annotations

import logging
from typing import Any

from airflow.sdk import TriggerRule, task
from airflow.sdk.exceptions import AirflowFailException

from include.fleets import lock as fleet_lock

log = logging.getLogger("bp.fleet_lock")


class SsmLockStore:
    """:class:`include.fleets.lock.ParameterStore` on SSM Parameter Store."""

    def __init__(self, aws_conn_id: str) -> None:
        from bp_aws.hooks.ssm_parameters import SsmParameterHook

        self.ssm = SsmParameterHook(aws_conn_id=aws_conn_id)

    def create(self, name: str, value: str) -> bool:
        return self.ssm.create(name, value)

    def read(self, name: str) -> str | None:
        parameter = self.ssm.get(name)
        return parameter["Value"] if parameter else None

    def overwrite(self, name: str, value: str) -> None:
        self.ssm.put(name, value, overwrite=True)

    def delete(self, name: str) -> None:
        self.ssm.delete(name)


def run_state(ti: Any):
    def state(dag_id: str, run_id: str) -> str:
        from airflow.sdk.exceptions import AirflowRuntimeError

        try:
            state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
        except AirflowRuntimeError:  # the run was deleted: it holds nothing any more
            return "gone"
        return str(getattr(state, "value", state))  # DagRunState.RUNNING -> "running"

    return state


def started_by(ti: Any):
    """How this run was started (Airflow's ``triggered_by``), read through the REST API:
    the task context doesn't carry it."""

    def how() -> str | None:
        from bp_tasks.common import airflow_api

        return airflow_api().get_run(ti.dag_id, ti.run_id).triggered_by

    return how


def take(lock: str, purpose: str, *, aws_conn_id: str, ti: Any, delegate: tuple[str, str] | None = None) -> str:
    """Take the fleet's lock for this run (or find it held for this run); fail the task,
    changing nothing, when another run holds it."""
    me = fleet_lock.Holder.new(ti.dag_id, ti.run_id, purpose, delegate=delegate)
    try:
        said = fleet_lock.acquire(SsmLockStore(aws_conn_id), lock, me, run_state(ti), started_by(ti))
    except fleet_lock.LockRefused as refused:
        raise AirflowFailException(f"Refused: {refused} This run changed nothing.") from None
    log.info("%s", said)
    return said


def give_back(lock: str, *, aws_conn_id: str, dag_id: str, run_id: str) -> str:
    said = fleet_lock.release(SsmLockStore(aws_conn_id), lock, dag_id, run_id)
    log.info("%s", said)
    return said


@task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
def acquire_lock(purpose: str, params: dict | None = None, ti=None) -> str:
    """The fleet's change lock, right before the first change (a build or an approval
    wait before it holds nothing). It joins the path with and without an approval, so it
    must run only when one of them ran: its only upstreams are that path's tasks
    (the request is pulled, see :func:`bp_tasks.common.validated_request`)."""
    from bp_tasks.common import validated_request

    return take(validated_request(ti).lock, purpose, aws_conn_id=params["aws_conn_id"], ti=ti)


@task(trigger_rule=TriggerRule.ALL_DONE)
def release_lock(request: Any | None, params: dict | None = None, dag_run=None) -> str:
    """Whatever happened before: the lock goes if this run holds it (never another run's)."""
    if request is None:
        return "this run holds no lock (its request was refused)"
    return give_back(request.lock, aws_conn_id=params["aws_conn_id"], dag_id=dag_run.dag_id, run_id=dag_run.run_id)
