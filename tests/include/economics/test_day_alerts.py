"""The alerts a published day deserves."""

from datetime import date, timedelta
from decimal import Decimal

from include.economics.day_alerts import alerts_for, renewal_failures, revenue_drop


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
        "payments": {
            "pro": {"failed_payments": 1, "renewals": 3, "failed_renewals": 0},
            "basic": {"failed_payments": 0, "renewals": 4, "failed_renewals": 1},
        },
        "renewals_at_risk_usd": "9.00",
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
                "release": "2026.11.2",
                "release_note": "The change started on 2026-11-16 with release 2026.11.2 (first served 2026-11-16).",
            }
        ],
        "reconciliation": {"warning": False},
        "payments": {},
        "renewals_at_risk_usd": "0",
    }
    margins = [{"plan": "all", "margin_pct": Decimal("30"), "margin_usd": Decimal("30"), "revenue_usd": Decimal("40")}]
    [latency, dropped] = alerts_for(summary, margins, Decimal("20"), _revenue(date(2026, 11, 22), "100", "100"))
    assert latency.title == "Latency anomaly on feature:image-gen (2026-11-22)"
    assert latency.text().splitlines()[1] == "latency = 15691 (same-weekday baseline 9828)"
    assert "provider's status and region" in latency.detail
    assert latency.dimensions == {"feature": "image-gen", "release": "2026.11.2"}
    assert "The change started on 2026-11-16 with release 2026.11.2" in latency.detail
    assert "feature=image-gen, release=2026.11.2" in latency.text()
    assert dropped.title == "Revenue down 60% on 2026-11-22 (all plans)"


def _renewals(**plans):
    return {
        plan: {"failed_payments": 0, "renewals": ok, "failed_renewals": failed} for plan, (ok, failed) in plans.items()
    }


def test_failed_renewals_alert_on_their_share_of_the_day_s_renewals_from_two_failures():
    day = date(2026, 11, 22)
    at_risk = Decimal("38")
    assert renewal_failures(day, _renewals(pro=(0, 1)), at_risk) is None  # one failure (100 %) pages nobody
    assert renewal_failures(day, _renewals(pro=(5, 1), basic=(4, 1)), at_risk) is None  # 2 of 11: 18 %
    warning = renewal_failures(day, _renewals(pro=(5, 1), basic=(3, 1)), at_risk)  # 2 of 10: 20 %
    assert (warning.severity, warning.title) == ("warning", "2 of 10 plan renewals failed on 2026-11-22 (20%)")
    assert warning.detail.startswith("failed per plan: basic 1 of 4; pro 1 of 6; $38.00 of renewals at risk.")
    assert "Runbook:" in warning.detail
    assert renewal_failures(day, _renewals(pro=(1, 1), basic=(1, 1)), at_risk).severity == "critical"  # 50 %
    assert renewal_failures(day, _renewals(pro=(2, 1), basic=(1, 1)), at_risk).severity == "warning"  # 40 %
    assert renewal_failures(day, {}, at_risk) is None


def test_a_failed_renewal_is_not_a_failed_payment_alert():
    summary = {
        "day": "2026-11-22",
        "anomalies": [],
        "reconciliation": {"warning": False},
        "payments": _renewals(pro=(0, 2), team=(0, 1)),
        "renewals_at_risk_usd": "157",
    }
    [alert] = alerts_for(summary, [], Decimal("20"))
    assert alert.title == "3 of 3 plan renewals failed on 2026-11-22 (100%)"
    assert (alert.severity, alert.metric, alert.dimensions) == ("critical", "renewal_failure_pct", {"plan": "all"})


def test_a_failure_rate_anomaly_reads_in_percent_with_its_runbook():
    summary = {
        "day": "2026-11-22",
        "anomalies": [
            {"signal": "failure_rate", "dimension": "feature:image-gen", "value": 0.0712, "baseline": 0.0205,
             "z": 8.1, "severity": "critical", "release": None}
        ],
        "reconciliation": {"warning": False},
        "payments": {},
        "renewals_at_risk_usd": "0",
    }  # fmt: skip
    [alert] = alerts_for(summary, [], Decimal("20"))
    assert alert.title == "Failure rate anomaly on feature:image-gen (2026-11-22)"
    assert alert.text().splitlines()[1] == "failure_rate_pct = 7.12 (same-weekday baseline 2.05)"
    assert alert.dimensions == {"feature": "image-gen"}
    assert "error types in the ledger" in alert.detail


def test_the_platform_losing_money_without_revenue_is_a_critical_margin_alert_a_free_plan_is_not():
    summary = {"day": "2026-11-22", "anomalies": [], "reconciliation": {"warning": False}, "payments": {},
               "renewals_at_risk_usd": "0"}  # fmt: skip
    margins = [
        {"plan": "all", "margin_pct": None, "margin_usd": Decimal("-490.10"), "revenue_usd": Decimal("-29")},
        {"plan": "free", "margin_pct": None, "margin_usd": Decimal("-160"), "revenue_usd": Decimal("0")},
    ]
    [alert] = alerts_for(summary, margins, Decimal("20"))
    assert (alert.severity, alert.title) == ("critical", "Margin below 20% for plan all (2026-11-22)")
    assert alert.text().splitlines()[1] == "margin_usd = -490.10 (threshold 0)"
