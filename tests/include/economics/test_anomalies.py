from datetime import date, timedelta

import pandas as pd
import pytest

from include.economics.anomalies import Rules, anomalies_table, detect, judge

DAY = date(2026, 11, 5)  # a Thursday


def _history(weekday_value, weekend_value=None, days=28, noise=(0.97, 1.0, 1.03), anchor=DAY):
    values = {}
    for back in range(1, days + 1):
        d = anchor - timedelta(days=back)
        base = weekend_value if (weekend_value is not None and d.weekday() >= 5) else weekday_value
        values[d] = base * noise[back % len(noise)]
    return values


def test_a_normal_day_is_no_anomaly():
    assert judge(DAY, "cost", "feature:chat", 102.0, _history(100.0)) is None


def test_a_planted_token_burn_is_critical():
    anomaly = judge(DAY, "tokens", "feature:video-effects", 12_000_000, _history(2_000_000))

    assert anomaly.severity == "critical"
    assert anomaly.baseline == 2_000_000
    assert anomaly.z > 6


def test_a_moderate_rise_is_a_warning():
    # baseline 100, MAD 3 -> spread 4.45; 120 is z = 4.5 and 20% above: a warning
    anomaly = judge(DAY, "cost", "model:gpt-4.1", 120.0, _history(100.0))

    assert anomaly.severity == "warning"


def test_weekend_traffic_is_compared_with_weekends():
    saturday = date(2026, 11, 7)
    history = _history(100.0, weekend_value=400.0, anchor=saturday)

    # 400 is what Saturdays look like; against the overall median (100) it would be 4x
    assert judge(saturday, "cost", "feature:chat", 400.0, history) is None
    assert judge(saturday, "cost", "feature:chat", 1600.0, history).severity == "critical"
    # and on a Thursday, 400 is an anomaly
    assert judge(DAY, "cost", "feature:chat", 400.0, _history(100.0, weekend_value=400.0)).severity == "critical"


def test_small_spikes_are_below_the_materiality_floor():
    # 10x on a feature that costs cents: the excess is under $5
    assert judge(DAY, "cost", "feature:tiny", 0.50, _history(0.05)) is None
    # and an absolute excess that is a small fraction of a big baseline
    assert judge(DAY, "cost", "feature:big", 10_200.0, _history(10_000.0, noise=(1.0,))) is None


def test_a_short_history_is_not_judged():
    assert judge(DAY, "cost", "feature:new", 999.0, _history(1.0, days=5)) is None


def test_detect_reads_the_rollups_and_a_missing_day_counts_as_zero_use():
    days = [DAY - timedelta(days=k) for k in range(1, 29)]
    history = {
        "ai_feature_daily": pd.DataFrame(
            [{"day": d, "feature_name": "chat", "total_tokens": 1_000_000, "cost_usd": 10} for d in days]
            + [{"day": days[0], "feature_name": "video-effects", "total_tokens": 900_000, "cost_usd": 9}]
        ),
        "ai_model_daily": pd.DataFrame(columns=["day", "model_name", "total_tokens", "cost_usd"]),
    }
    today = {
        "ai_feature_daily": pd.DataFrame(
            [
                {"day": DAY, "feature_name": "chat", "total_tokens": 1_010_000, "cost_usd": 10.1},
                {"day": DAY, "feature_name": "video-effects", "total_tokens": 8_000_000, "cost_usd": 80},
            ]
        ),
        "ai_model_daily": pd.DataFrame([{"day": DAY, "model_name": "gpt-4.1", "total_tokens": 1, "cost_usd": 0}]),
    }

    found = detect(DAY, today, history, Rules())

    assert {(a.signal, a.dimension, a.severity) for a in found} == {
        ("tokens", "feature:video-effects", "critical"),
        ("cost", "feature:video-effects", "critical"),
    }
    table = anomalies_table(found)
    assert list(table.columns) == ["day", "signal", "dimension", "value", "baseline", "severity", "release"]
    assert set(table["baseline"].astype(float)) == {0.0}


def test_p95_latency_is_judged_per_feature_and_a_day_without_requests_is_no_data():
    days = [DAY - timedelta(days=k) for k in range(1, 29)]
    usual = [{"day": d, "feature_name": "image-gen", "total_tokens": 1, "cost_usd": 0, "p95_ms": 9_800 + k % 3 * 100}
             for k, d in enumerate(days)]  # fmt: skip
    quiet = [{"day": d, "feature_name": "search", "total_tokens": 1, "cost_usd": 0, "p95_ms": 300} for d in days[:7]]
    history = {
        "ai_feature_daily": pd.DataFrame(usual + quiet),
        "ai_model_daily": pd.DataFrame([{**row, "model_name": "gemini-2.5-pro"} for row in usual]),
    }
    today = {
        "ai_feature_daily": pd.DataFrame(
            [
                {"day": DAY, "feature_name": "image-gen", "total_tokens": 1, "cost_usd": 0, "p95_ms": 15_700},
                {"day": DAY, "feature_name": "search", "total_tokens": 1, "cost_usd": 0, "p95_ms": 320},
                {"day": DAY, "feature_name": "chat", "total_tokens": 1, "cost_usd": 0, "p95_ms": None},
            ]
        ),
        "ai_model_daily": pd.DataFrame(
            [{"day": DAY, "model_name": "gemini-2.5-pro", "total_tokens": 1, "cost_usd": 0, "p95_ms": 15_700}]
        ),
    }

    found = detect(DAY, today, history, Rules())

    # search's 7 days of history with 21 gaps is judged (gaps are no data, not 0 ms), and +20 ms is nothing
    assert [(a.signal, a.dimension, a.severity) for a in found] == [("latency", "feature:image-gen", "critical")]
    assert found[0].baseline == pytest.approx(9_850)  # the same weekday: 9,800, 9,900, 10,000, 9,800


def test_a_latency_rise_under_half_a_second_pages_nobody():
    history = _history(1_000.0)
    assert judge(DAY, "latency", "feature:chat", 1_400.0, history) is None  # +40 %, but 400 ms
    assert judge(DAY, "latency", "feature:chat", 1_900.0, history).severity == "critical"


def test_the_failure_rate_is_judged_per_feature_from_two_points_above_its_baseline():
    days = [DAY - timedelta(days=k) for k in range(1, 29)]
    row = {"feature_name": "image-gen", "total_tokens": 1, "cost_usd": 0}
    usual = [{**row, "day": d, "failure_rate": 0.02 + k % 3 / 1000} for k, d in enumerate(days)]
    history = {
        "ai_feature_daily": pd.DataFrame(usual),
        "ai_model_daily": pd.DataFrame([{**row, "model_name": "gemini-2.5-pro"} for row in usual]),
    }
    flaky = {"day": DAY, "feature_name": "image-gen", "total_tokens": 1, "cost_usd": 0, "failure_rate": 0.07}
    today = {
        "ai_feature_daily": pd.DataFrame([flaky]),
        "ai_model_daily": pd.DataFrame([{**flaky, "model_name": "gemini-2.5-pro"}]),
    }

    found = detect(DAY, today, history, Rules())

    assert [(a.signal, a.dimension, a.severity) for a in found] == [("failure_rate", "feature:image-gen", "critical")]
    assert judge(DAY, "failure_rate", "feature:chat", 0.039, _history(0.02)) is None  # +1.9 points: nothing
    assert judge(DAY, "failure_rate", "feature:chat", 0.041, _history(0.02)).severity == "critical"
