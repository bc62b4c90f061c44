"""The economics' settings: the InfluxDB bucket is the one the dashboards read, never a Variable."""

import pytest

from bp_tasks.economics_settings import Settings
from include.observability.catalogue import ECONOMICS_BUCKET


def test_the_export_writes_to_the_bucket_the_dashboards_read(monkeypatch):
    assert Settings.load().influx_bucket == ECONOMICS_BUCKET
    monkeypatch.setenv("AIRFLOW_VAR_ECONOMICS_INFLUX_BUCKET", ECONOMICS_BUCKET)  # the same name: harmless
    assert Settings.load().influx_bucket == ECONOMICS_BUCKET


def test_the_retired_bucket_variable_naming_another_bucket_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ECONOMICS_INFLUX_BUCKET", "finance")
    with pytest.raises(ValueError, match="names 'finance', but the dashboards and alert rules read 'economics'"):
        Settings.load()
