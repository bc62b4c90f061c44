"""Fleet changes marked on the GPU fleets dashboard: a ``bp_change`` point per rollout,
rollback, AMI promotion or revocation, through ``influxdb_default`` (here the InfluxDB
write-API double), never failing the task that made the change."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bp_tasks.audit import mark_change
from include.influx_tags import CardinalityError
from include.observability.catalogue import TELEMETRY_BUCKET
from tests.doubles.influxdb_writes import InfluxWrites

RUN = SimpleNamespace(run_id="manual__2026-11-30T10:00:00", run_after=datetime(2026, 11, 30, 10, 0, tzinfo=UTC))


@pytest.fixture
def influx(monkeypatch):
    double = InfluxWrites(token="t0ken")
    connection = {"conn_type": "influxdb", "host": "127.0.0.1", "port": double.port, "schema": "http",
                  "extra": {"token": "t0ken", "org": "bp"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_INFLUXDB_DEFAULT", json.dumps(connection))
    yield double
    double.stop()


def test_a_rollout_is_marked_once_however_often_its_task_runs(influx):
    assert mark_change("rollout", "staging", "gpu-default", "rollout of bundle b-42: success", RUN)
    assert mark_change("rollout", "staging", "gpu-default", "rollout of bundle b-42: success", RUN)  # a cleared task

    [line] = influx.lines(TELEMETRY_BUCKET)
    assert line.startswith("bp_change,fleet=gpu-default,kind=rollout,stage=staging ")
    assert 'text="rollout of bundle b-42: success"' in line
    assert 'run_id="manual__2026-11-30T10:00:00"' in line
    assert line.endswith(f" {int(RUN.run_after.timestamp())}")


def test_without_an_influxdb_connection_the_audit_record_is_all(caplog):
    with caplog.at_level(logging.INFO, logger="bp.audit"):
        assert mark_change("ami_promotion", "production", "gpu-default", "AMI ami-1 promoted", RUN) is False
    assert "No InfluxDB connection" in caplog.text


def test_influxdb_down_is_logged_not_raised(influx, caplog):
    influx.failing = True
    with caplog.at_level(logging.WARNING, logger="bp.audit"):
        assert mark_change("ami_revocation", "staging", "gpu-default", "AMI ami-1 revoked", RUN) is False
    assert "Could not mark the ami_revocation of staging/gpu-default" in caplog.text
    assert influx.lines(TELEMETRY_BUCKET) == []


def test_a_change_of_an_unknown_kind_or_stage_is_refused(influx):
    with pytest.raises(ValueError, match="not one of"):
        mark_change("hotfix", "staging", "gpu-default", "x", RUN)
    with pytest.raises(CardinalityError, match="stage"):
        mark_change("rollout", "dev", "gpu-default", "x", RUN)
    assert influx.lines(TELEMETRY_BUCKET) == []
