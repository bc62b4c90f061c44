"""Task bodies of ``gpu_bundle_rollback``: the earlier rollout's audit record read and
checked against the pointer, then a ``gpu_bundle_rollout`` back to its bundle."""

from __future__ import annotations

import logging

from airflow.sdk import serde, task

from bp_tasks.audit import rollback_refusal, rollout_record
from bp_tasks.common import RequestRefused, validated
from include.rollouts import rollback

log = logging.getLogger("bp.gpu_bundle_rollback")
UNCHANGED = "Nothing was changed."

# the request travels as itself to the run's later tasks (Airflow refuses a class it was not told of)
serde.allow_class(rollback.RollbackRequest)


@task
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> rollback.RollbackRequest:
    """Domain checks on the params, before any AWS call."""
    request = validated(rollback.RollbackRequest.from_params, params, UNCHANGED, dag_run=dag_run, dag=dag)
    log.info("Rollback of rollout %s on %s", request.rollout_run_id, request.fleet)
    return request


@task(multiple_outputs=False)
def plan_rollback(request: rollback.RollbackRequest, params: dict | None = None) -> dict:
    """The conf of the rollout back to the earlier rollout's bundle; refused, changing
    nothing, when there is nothing to go back to or the pointer moved since."""
    from bp_aws.hooks.ssm_parameters import SsmParameterHook

    fleet, run_id, aws_conn_id = request.fleet, request.rollout_run_id, params["aws_conn_id"]
    pointer = SsmParameterHook(aws_conn_id=aws_conn_id).get(fleet.active_bundle)
    value = pointer["Value"] if pointer else None
    record = rollout_record(fleet, run_id, aws_conn_id)
    problem = rollback_refusal(fleet, run_id, record, value, aws_conn_id)
    if problem:
        raise RequestRefused(f"Can't roll back rollout {run_id}: {problem}. {UNCHANGED}")
    conf = rollback.rollout_conf(request, record, aws_conn_id)
    log.info(
        "Rollout %s moved %s from %s to %s: rolling back to bundle %s (gpu_bundle_rollout, refresh)",
        run_id,
        fleet,
        record["from_bundle"],
        record["to_bundle"],
        conf["bundle_id"],
    )
    return conf


@task
def rollback_outcome(conf: dict, run_id: str | None = None) -> str:
    """The rollout it triggered succeeded (a failure fails the trigger task before this)."""
    message = (
        f"rollout {conf['rollback_of']} rolled back: {conf['fleet_stage']}/{conf['fleet_slug']} runs bundle "
        f"{conf['bundle_id']} again (gpu_bundle_rollout run {rollback.rollback_run_id(run_id)})"
    )
    log.info(message)
    return message
