"""A validated request crosses task boundaries as itself: through Airflow's own serde, as
XCom stores it (JSON in between), with no configuration entry - the task module allows
its class - and comes back equal, so no later task rebuilds or re-checks it."""

from __future__ import annotations

import importlib
import json

import pytest
from airflow.sdk import serde

from include.amis import revocation
from include.amis.build import BuildRequest
from include.devnodes.lifecycle import DevNodeRequest
from include.fleets.provision import FleetRequest
from include.rollouts.rollback import RollbackRequest
from include.rollouts.rollout import RolloutRequest

REQUESTS = {
    "gpu_ami_revoke": revocation.RevocationRequest.from_params(
        {"image_id": "ami-0123456789abcdef0", "reason": "driver crash under load (INC-42)"}
    ),
    "gpu_fleet_provision": FleetRequest.from_params(
        {"fleet_stage": "production", "fleet_slug": "gpu-default", "action": "apply", "config_wait_minutes": 3}
    ),
    "gpu_ami_build_and_bake": BuildRequest.from_params(
        {"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake", "instance_type": "g5.xlarge"}
        | {"start_instance_refresh": True, "smoke_test": False, "force_build": True}
    ),
    "gpu_dev_node": DevNodeRequest.from_params(
        {"fleet_stage": "staging", "name": "carol-new", "action": "create", "owner": "carol"}
        | {"fleet_slug": "gpu-default", "instance_type": "g5.xlarge"}
    ),
    "gpu_bundle_rollout": RolloutRequest.from_params(
        {"fleet_stage": "production", "fleet_slug": "gpu-default", "bundle_id": "b-1", "strategy": "refresh"}
        | {"checkpoint_percentages": [50, 100], "min_jobs": 5}
    ),
    "gpu_bundle_rollback": RollbackRequest.from_params(
        {"fleet_stage": "staging", "fleet_slug": "gpu-default", "rollout_run_id": "manual__2026-12-01T08:00:00+00:00"}
    ),
}
#: each DAG's task module, imported as a task process imports it: that allows its classes
TASK_MODULES = {dag_id: importlib.import_module(f"bp_tasks.{dag_id}") for dag_id in REQUESTS}


@pytest.mark.parametrize("dag_id", sorted(REQUESTS))
def test_the_request_crosses_xcom_as_itself(dag_id):
    request = REQUESTS[dag_id]
    stored = json.dumps(serde.serialize(request))

    assert serde.deserialize(json.loads(stored)) == request


@pytest.mark.parametrize("dag_id", sorted(REQUESTS))
def test_the_dags_operators_find_every_key_they_read_in_the_requests_wiring(dag_id):
    """``request["x"]`` in the parsed DAG (its verdict tasks, built in
    ``bp_tasks.rollout_verdict``, included) pulls the XCom key ``x`` ``validate_request``
    pushes from :meth:`wiring`: a key it does not push would fail the run at that task."""
    from airflow.dag_processing.dagbag import DagBag

    from bp_tasks.common import REQUEST_TASK, keys_read
    from tests.conftest import REPO_ROOT

    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py")).dags[dag_id]
    read = keys_read(dag, REQUEST_TASK)
    wiring = REQUESTS[dag_id].wiring() if hasattr(REQUESTS[dag_id], "wiring") else {}

    assert read - set(wiring) == set()


def test_the_revocation_plan_crosses_xcom_as_itself():
    restore = revocation.PointerRestore(
        "production", "gpu-default", "/bp/ami/fleets/production/gpu-default", 3, "ami-1"
    )
    moved = revocation.MovedPointer("/bp/ami/fleets/staging/gpu-default", "ami-9", 7, "someone")
    plan = revocation.RevocationPlan("ami-0123456789abcdef0", "production", (restore,), (moved,))

    assert serde.deserialize(json.loads(json.dumps(serde.serialize(plan)))) == plan


def test_the_first_task_returns_the_request_and_pushes_the_names_operators_read():
    """gpu_bundle_rollout's validate_request as Airflow calls it, in its parsed DAG: its
    return value is the request, and each wiring name an operator reads is an XCom key of
    its own (``request["auto_scaling_group"]``); a name only tasks use is not pushed apart."""
    from types import SimpleNamespace

    from airflow.dag_processing.dagbag import DagBag

    from bp_tasks.params import rollout_params
    from tests.conftest import REPO_ROOT

    rollout = DagBag(dag_folder=str(REPO_ROOT / "dags" / "gpu_bundle_rollout.py")).dags["gpu_bundle_rollout"]
    pushed = {}
    ti = SimpleNamespace(
        task=rollout.task_dict["validate_request"],
        task_id="validate_request",
        xcom_push=lambda key, value: pushed.__setitem__(key, value),
    )
    conf = {"fleet_stage": "production", "fleet_slug": "gpu-default", "bundle_id": "b-1", "strategy": "refresh"}
    params = {name: param.value for name, param in rollout_params().items()} | conf | {"aws_conn_id": "aws_default"}
    dag = SimpleNamespace(params=params)

    request = TASK_MODULES["gpu_bundle_rollout"].validate_request.function(
        params=params, ti=ti, dag_run=SimpleNamespace(conf=conf), dag=dag
    )

    assert request == RolloutRequest.from_params(params)
    assert pushed["auto_scaling_group"] == "asg-production-gpu-default"
    assert {"bundle_id", "pointer_value", "thresholds"} <= set(pushed)
    assert pushed == {key: value for key, value in request.wiring().items() if key in pushed}
    assert "lock" not in pushed  # read by tasks from the request, never by an operator
