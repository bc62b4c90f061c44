"""The rollout audit record reaches the backend signed with the asset-ops secret."""

from __future__ import annotations

import pytest

from bp_aws import rollout_tasks
from include import ssm_paths
from tests.doubles.ops_backend import OpsBackend

BODY = b'{"event": "bundle_rollout", "run_id": "r-1"}\n'


@pytest.fixture
def backend(aws_http, monkeypatch):
    aws_http("secretsmanager").create_secret(Name=ssm_paths.asset_ops_secret(), SecretString="asset-ops-s3cret")
    double = OpsBackend("asset-ops-s3cret")
    monkeypatch.setenv("AIRFLOW__BP__ASSET_OPS_API_URL", double.url)
    yield double
    double.stop()


def test_the_record_is_posted_signed_with_the_asset_ops_secret(backend):
    rollout_tasks._post_to_backend(BODY, {"aws_conn_id": "aws_default"})

    assert backend.refused == []
    assert backend.accepted == [{"event": "bundle_rollout", "run_id": "r-1"}]


def test_a_backend_that_refuses_the_signature_is_logged_not_raised(backend, caplog):
    backend.secret = "rotated"

    rollout_tasks._post_to_backend(BODY, {"aws_conn_id": "aws_default"})

    assert backend.refused == ["bad signature"]
    assert "Could not POST the audit record to the backend (HTTP Error 401" in caplog.text


def test_without_a_backend_url_nothing_is_posted(backend, monkeypatch):
    monkeypatch.delenv("AIRFLOW__BP__ASSET_OPS_API_URL")

    rollout_tasks._post_to_backend(BODY, {"aws_conn_id": "aws_default"})

    assert (backend.accepted, backend.refused) == ([], [])
