"""The Airflow side of ai_economics_daily: request validation, connections, alerts."""

import json

import pytest

from bp_data.engines import engine_for


def test_connections_become_engines(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_AI_LEDGER", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "l.db")}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AI_WAREHOUSE",
        json.dumps(
            {
                "conn_type": "mysql",
                "host": "db.internal",
                "port": 3306,
                "login": "etl",
                "password": "p@ss:w/rd",
                "schema": "bi",
            }
        ),
    )
    monkeypatch.setenv("AIRFLOW_CONN_OTHER", json.dumps({"conn_type": "oracle", "host": "x"}))

    assert str(engine_for("ai_ledger").url) == f"sqlite:///{tmp_path / 'l.db'}"
    warehouse = engine_for("ai_warehouse").url
    assert (warehouse.drivername, warehouse.host, warehouse.database, warehouse.password) == (
        "mysql+mysqldb",
        "db.internal",
        "bi",
        "p@ss:w/rd",
    )
    with pytest.raises(Exception, match="is of type 'oracle'; use sqlite, mysql \\(MariaDB\\) or postgres"):
        engine_for("other")
