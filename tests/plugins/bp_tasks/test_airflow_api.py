"""The tasks' own REST client (the ``airflow_api`` connection): the CI client's transport
rule, and a missing connection said in one line."""

from __future__ import annotations

import json

import pytest

from bp_tasks.common import AirflowApiUnavailable, airflow_api


def _connection(monkeypatch, host: str, **extra) -> None:
    conn = {"conn_type": "http", "host": host, "login": "airflow-api", "password": "x", "extra": extra}
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(conn))


def test_credentials_go_over_https_or_to_this_machine(monkeypatch):
    for host in ("https://airflow.example.com", "http://127.0.0.1:8080"):
        _connection(monkeypatch, host)
        assert airflow_api().base_url == host


def test_plain_http_to_another_host_is_refused_unless_the_connection_says_the_network_is_trusted(monkeypatch):
    _connection(monkeypatch, "http://airflow-apiserver:8080")
    with pytest.raises(AirflowApiUnavailable, match="plain http to another host: credentials would travel in clear"):
        airflow_api()

    _connection(monkeypatch, "http://airflow-apiserver:8080", insecure_http=True)
    assert airflow_api().username == "airflow-api"


def test_a_missing_connection_is_one_line_naming_it(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API", raising=False)

    with pytest.raises(AirflowApiUnavailable, match="the airflow_api connection is not set"):
        airflow_api()
