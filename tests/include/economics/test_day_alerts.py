"""The alerts a published day deserves."""

from decimal import Decimal

from include.economics.day_alerts import alerts_for


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
