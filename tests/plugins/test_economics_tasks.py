"""The Airflow side of ai_economics_daily: request validation, connections, alerts."""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bp_data.economics import alerts_for, resolve_day
from bp_data.engines import engine_for


def test_the_day_defaults_to_the_one_before_the_scheduled_run():
    assert resolve_day(None, datetime(2026, 11, 6, 2, 0, tzinfo=UTC)) == date(2026, 11, 5)
    assert resolve_day("2026-11-01", None) == date(2026, 11, 1)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("2026-13-01", "day '2026-13-01' is not a YYYY-MM-DD date. Nothing was computed."),
        ((datetime.now(UTC).date()).isoformat(), "is not over yet (UTC)"),
        ((datetime.now(UTC).date() + timedelta(days=3)).isoformat(), "only past days can be computed"),
    ],
)
def test_a_bad_day_fails_before_any_connection_is_opened(requested, message):
    with pytest.raises(AirflowFailException, match=message.replace("(", "\\(").replace(")", "\\)")):
        resolve_day(requested, None)


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
        "mysql+pymysql",
        "db.internal",
        "bi",
        "p@ss:w/rd",
    )
    with pytest.raises(Exception, match="is of type 'oracle'; use sqlite, mysql \\(MariaDB\\) or postgres"):
        engine_for("other")


def test_the_day_deserves_these_alerts():
    summary = {
        "day": "2026-11-22",
        "anomalies": [
            {
                "signal": "tokens",
                "dimension": "feature:video-effects",
                "value": 59041104.0,
                "baseline": 9270886.0,
                "z": 40.5,
                "severity": "critical",
            }
        ],
        "reconciliation": {
            "warning": True,
            "drift_pct": -45.6,
            "worst_models": [["claude-sonnet-4", "301.37", "161.72", -46.3]],
        },
        "failed_payments": {"pro": 1},
    }
    margins = [
        {"plan": "pro", "margin_pct": Decimal("51.5"), "margin_usd": Decimal("44.8")},
        {"plan": "basic", "margin_pct": Decimal("12.0"), "margin_usd": Decimal("3.1")},
        {"plan": "all", "margin_pct": Decimal("-67.25"), "margin_usd": Decimal("-125.09")},
        {"plan": "free", "margin_pct": None, "margin_usd": Decimal("-160")},
    ]

    alerts = alerts_for(summary, margins, Decimal("20"))

    assert [(a.severity, a.title) for a in alerts] == [
        ("critical", "Tokens anomaly on feature:video-effects (2026-11-22)"),
        ("warning", "Margin below 20% for plan basic (2026-11-22)"),
        ("critical", "Margin below 20% for plan all (2026-11-22)"),
        ("warning", "Recomputed AI cost drifts from the app's estimate (2026-11-22)"),
        ("warning", "1 failed payment(s) on plan pro (2026-11-22)"),
    ]
    assert alerts[0].text().splitlines()[1] == "tokens = 59041104 (threshold 9270886)"
    assert alerts[0].dimensions == {"feature": "video-effects"}
