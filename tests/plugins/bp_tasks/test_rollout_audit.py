"""The rollout audit record reaches the backend signed with the asset-ops secret."""

from __future__ import annotations

import json

import pytest

from bp_tasks import audit
from include.naming import platform
from tests.doubles.ops_backend import OpsBackend

BODY = b'{"event": "bundle_rollout", "run_id": "r-1"}\n'


@pytest.fixture
def backend(aws_http, monkeypatch):
    aws_http("secretsmanager").create_secret(Name=platform.asset_ops_secret(), SecretString="asset-ops-s3cret")
    double = OpsBackend("asset-ops-s3cret")
    monkeypatch.setenv("AIRFLOW_CONN_BP_ASSET_OPS", json.dumps({"conn_type": "http", "host": double.url}))
    yield double
    double.stop()


def test_the_record_is_posted_signed_with_the_asset_ops_secret(backend):
    audit.post_to_backend(BODY, "aws_default")

    assert backend.refused == []
    assert backend.accepted == [{"event": "bundle_rollout", "run_id": "r-1"}]


def test_a_backend_that_refuses_the_signature_is_logged_not_raised(backend, caplog):
    backend.secret = "rotated"

    audit.post_to_backend(BODY, "aws_default")

    assert backend.refused == ["bad signature"]
    assert "Could not POST the audit record to the backend (401" in caplog.text


def test_without_a_backend_connection_nothing_is_posted(backend, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_BP_ASSET_OPS")

    audit.post_to_backend(BODY, "aws_default")

    assert (backend.accepted, backend.refused) == ([], [])
