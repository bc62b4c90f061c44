"""The alerts a published day deserves."""

from datetime import date, timedelta
from decimal import Decimal

from include.economics.day_alerts import alerts_for, revenue_drop


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
    assert alerts[0].text().splitlines()[1] == "tokens = 59041104 (same-weekday baseline 9270886)"
    assert alerts[1].text().splitlines()[1] == "margin_pct = 12.0 (threshold 20)"
    assert alerts[0].dimensions == {"feature": "video-effects"}


def _revenue(day, before, week_before):
    return {day - timedelta(days=1): Decimal(before), day - timedelta(days=7): Decimal(week_before)}


def test_revenue_down_against_the_day_before_and_the_same_weekday_alerts_by_the_smaller_fall():
    day = date(2026, 11, 22)
    assert revenue_drop(day, Decimal("100"), _revenue(day, "110", "105")) is None  # an ordinary day
    assert revenue_drop(day, Decimal("60"), _revenue(day, "70", "150")) is None  # under its day before by 14 % only
    warning = revenue_drop(day, Decimal("70"), _revenue(day, "100", "120"))
    assert (warning.severity, warning.title) == ("warning", "Revenue down 30% on 2026-11-22 (all plans)")
    assert "$100.00 the day before (-30.0%); $120.00 the same weekday a week before (-41.7%)" in warning.detail
    assert "Runbook:" in warning.detail
    assert revenue_drop(day, Decimal("50"), _revenue(day, "100", "120")).severity == "critical"
    assert revenue_drop(day, Decimal("5"), _revenue(day, "20", "20")) is None  # -75 %, but $15: pages nobody
    assert revenue_drop(day, Decimal("5"), {day - timedelta(days=1): Decimal("90")}) is None  # no week before


def test_each_anomaly_alert_has_its_runbook_line_and_latency_reads_in_milliseconds():
    summary = {
        "day": "2026-11-22",
        "anomalies": [
            {
                "signal": "latency",
                "dimension": "feature:image-gen",
                "value": 15691.4,
                "baseline": 9828.0,
                "z": 7.1,
                "severity": "critical",
            }
        ],
        "reconciliation": {"warning": False},
        "failed_payments": {},
    }
    margins = [{"plan": "all", "margin_pct": Decimal("30"), "margin_usd": Decimal("30"), "revenue_usd": Decimal("40")}]
    [latency, dropped] = alerts_for(summary, margins, Decimal("20"), _revenue(date(2026, 11, 22), "100", "100"))
    assert latency.title == "Latency anomaly on feature:image-gen (2026-11-22)"
    assert latency.text().splitlines()[1] == "latency = 15691 (same-weekday baseline 9828)"
    assert "provider's status and region" in latency.detail
    assert dropped.title == "Revenue down 60% on 2026-11-22 (all plans)"
