"""The Airflow side of ai_economics_daily: request validation, connections, alerts."""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bp_data.engines import engine_for
from bp_tasks.ai_economics_daily import day_to_compute


def test_the_day_defaults_to_the_one_before_the_scheduled_run():
    assert day_to_compute(None, datetime(2026, 11, 6, 2, 0, tzinfo=UTC)) == date(2026, 11, 5)
    assert day_to_compute("2026-11-01", None) == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("2026-13-01", "day '2026-13-01' is not a YYYY-MM-DD date. Nothing was computed."),
        (0, "is not over yet (UTC)"),  # days from today, taken when the test runs: a suite
        (3, "only past days can be computed"),  # collected before midnight UTC runs after it
    ],
)
def test_a_bad_day_fails_before_any_connection_is_opened(requested, message):
    if isinstance(requested, int):
        requested = (datetime.now(UTC).date() + timedelta(days=requested)).isoformat()
    with pytest.raises(AirflowFailException, match=message.replace("(", "\\(").replace(")", "\\)")):
        day_to_compute(requested, None)


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
