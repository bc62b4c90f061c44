"""Token-burn and cost anomalies against a robust baseline (seed 000: "anomaly detector
flags token burn and cost variance beyond baseline"; alert only on actionable signals).

For each series (tokens or cost, per feature and per model; p95 latency and failure rate
per feature, seed 000's "API/AI latency" and failure-rate alerts) the baseline is built from
the previous 28 days:

* **weekday seasonality**: the baseline is the median of the same weekday in those
  weeks (weekend traffic is not compared with Tuesdays) when there are at least 3 such
  days, otherwise the median of all days;
* **robust spread**: 1.4826 x the median absolute deviation of the history, scaled by
  the weekday's level, floored at 5% of the baseline so a perfectly flat history does
  not make every wiggle infinite;
* **robust z** = (value - baseline) / spread; ``warning`` from 3.5, ``critical`` from 6
  (upward only: a runaway, not a quiet day);
* **materiality floor**, as AWS Cost Anomaly Detection does with its absolute and
  percentage impact thresholds: the excess must be at least ``min_absolute`` (per
  signal) *and* ``min_percent`` above the baseline, so a small spike pages nobody.

A series with fewer than ``min_history_days`` of history is not judged.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd

from include.economics import releases
from include.economics.rollups import RELEASE_TABLE

SIGNALS = {"tokens": "total_tokens", "cost": "cost_usd", "latency": "p95_ms", "failure_rate": "failure_rate"}
DIMENSIONS = {"feature": ("ai_feature_daily", "feature_name"), "model": ("ai_model_daily", "model_name")}
#: p95 latency and the failure rate are judged per feature (what users meet; a model's
#: follow its features), and a day without requests has neither: it is left out of the
#: history, not a zero.
LATENCY, FAILURE_RATE = "latency", "failure_rate"
PER_FEATURE = (LATENCY, FAILURE_RATE)
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Rules:
    history_days: int = 28
    min_history_days: int = 7
    warning_z: float = 3.5
    critical_z: float = 6.0
    min_percent: float = 20.0
    #: the smallest excess that pages: tokens, USD, milliseconds of p95, a share of requests
    min_absolute: Mapping[str, float] = field(
        default_factory=lambda: {"tokens": 500_000, "cost": 5.0, LATENCY: 500.0, FAILURE_RATE: 0.02}
    )
    spread_floor_ratio: float = 0.05


@dataclass(frozen=True)
class Anomaly:
    day: date
    signal: str
    dimension: str
    value: float
    baseline: float
    z: float
    severity: str
    #: the release the change started with (:mod:`include.economics.releases`), if one did
    release: str | None = None
    release_note: str | None = None


def judge(
    day: date, signal: str, dimension: str, value: float, history: Mapping[date, float], rules: Rules = Rules()
) -> Anomaly | None:
    """The anomaly ``value`` on ``day`` is against ``history`` (date -> value), or None."""
    window = {d: v for d, v in history.items() if day - timedelta(days=rules.history_days) <= d < day}
    if len(window) < rules.min_history_days:
        return None
    values = list(window.values())
    overall = statistics.median(values)
    same_weekday = [v for d, v in window.items() if d.weekday() == day.weekday()]
    baseline = statistics.median(same_weekday) if len(same_weekday) >= 3 else overall
    level = baseline / overall if overall else 1.0
    mad = statistics.median(abs(v - overall) for v in values)
    spread = max(MAD_TO_SIGMA * mad * level, rules.spread_floor_ratio * baseline, 1e-9)
    excess = value - baseline
    z = excess / spread
    material = excess >= rules.min_absolute.get(signal, 0) and (
        baseline <= 0 or excess / baseline * 100 >= rules.min_percent
    )
    if not material or z < rules.warning_z:
        return None
    severity = "critical" if z >= rules.critical_z else "warning"
    return Anomaly(day, signal, dimension, value, baseline, round(z, 2), severity)


def detect(
    day: date, today: Mapping[str, pd.DataFrame], history: Mapping[str, pd.DataFrame], rules: Rules = Rules()
) -> list[Anomaly]:
    """Judge every (signal, dimension value) of ``today``'s feature and model tables.

    :param today: table name -> the day's rollup (``ai_feature_daily``, ``ai_model_daily``,
        and ``ai_release_daily``, which names the release a change started with).
    :param history: the same tables over the previous days (from the warehouse).
    """
    found = []
    mixes = [frame for frame in (history.get(RELEASE_TABLE), today.get(RELEASE_TABLE)) if frame is not None]
    releases_mix = pd.concat([frame for frame in mixes if not frame.empty] or [releases.EMPTY_MIX], ignore_index=True)
    for dimension, (table, column) in DIMENSIONS.items():
        current, past = today.get(table), history.get(table)
        if current is None or current.empty:
            continue
        known_days = set(past["day"]) if past is not None and not past.empty else set()
        for signal, metric in SIGNALS.items():
            if signal in PER_FEATURE and dimension != "feature":
                continue
            for row in current.to_dict("records"):
                if not _measured(row.get(metric)):
                    continue
                # a day the warehouse has, without this value: zero use (latency, failures: no data)
                series = {} if signal in PER_FEATURE else {d: 0.0 for d in known_days}
                if past is not None and not past.empty:
                    for prior in past[past[column] == row[column]].to_dict("records"):
                        if _measured(prior.get(metric)):
                            series[prior["day"]] = float(prior[metric])
                anomaly = judge(day, signal, f"{dimension}:{row[column]}", float(row[metric]), series, rules)
                if anomaly:
                    found.append(_with_release(anomaly, dimension, row[column], series, releases_mix))
    return sorted(found, key=lambda a: (a.severity != "critical", -a.z))


def _with_release(
    anomaly: Anomaly, dimension: str, name: str, series: Mapping[date, float], mix: pd.DataFrame
) -> Anomaly:
    start = releases.change_start(anomaly.day, anomaly.value, anomaly.baseline, series)
    link = releases.started_with(mix, dimension, name, start)
    return replace(anomaly, release=link.release, release_note=link.sentence()) if link else anomaly


def _measured(value) -> bool:
    return value is not None and not pd.isna(value)


def anomalies_table(anomalies: list[Anomaly]) -> pd.DataFrame:
    """The ``ai_anomalies`` rows: day, signal, dimension, value, baseline, severity."""
    return pd.DataFrame(
        [
            {
                "day": a.day,
                "signal": a.signal,
                "dimension": a.dimension,
                "value": Decimal(str(round(a.value, 6))),
                "baseline": Decimal(str(round(a.baseline, 6))),
                "severity": a.severity,
                "release": a.release,
            }
            for a in anomalies
        ],
        columns=["day", "signal", "dimension", "value", "baseline", "severity", "release"],
    )
