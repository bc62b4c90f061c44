"""Whoever triggers a run picks its AWS connection only from ``[bp] aws_conn_ids``."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bp_tasks.common import RequestRefused, validated
from bp_tasks.params import aws_conn_id_param
from include.rollouts.rollout import RolloutRequest

GOOD = {"fleet_stage": "staging", "fleet_slug": "gpu-default", "bundle_id": "b-1", "strategy": "pointer_only"}


def test_the_form_offers_only_the_allowed_connections(monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__AWS_CONN_IDS", "aws_default, aws_staging")

    param = aws_conn_id_param()

    assert param.schema["enum"] == ["aws_default", "aws_staging"]
    assert param.value == "aws_default"


def test_a_connection_outside_the_list_is_refused_in_the_first_task(monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__AWS_CONN_IDS", "aws_default")
    params = {**GOOD, "aws_conn_id": "warehouse_admin", "instance_id": None}
    dag = SimpleNamespace(params=dict.fromkeys(params))

    with pytest.raises(RequestRefused, match=r"aws_conn_id 'warehouse_admin' is not one of the allowed connections"):
        validated(RolloutRequest.from_params, params, "Nothing was changed.", dag_run=SimpleNamespace(conf={}), dag=dag)

    assert validated(
        RolloutRequest.from_params,
        {**params, "aws_conn_id": "aws_default"},
        "Nothing was changed.",
        dag_run=SimpleNamespace(conf={}),
        dag=dag,
    )
