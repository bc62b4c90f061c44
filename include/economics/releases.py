"""Which release a change started with (seed 000: ``release`` is a correlation key, and
every notification carries the release/version).

The ledger names the app release that served each request; the daily job keeps the
mix per (feature, model, release) in ``ai_release_daily``. A change is blamed on a release
only when the timing says so:

* **when the change started**: walking back from the day judged, the first day of the run
  of days whose value held at least half the excess over the baseline (a token burn that
  began today starts today; a latency regression shipped a week ago starts that day);
* **the release**: one that began serving the feature (or model) on that first day or the
  day before (a rollout that began the evening before) - the one with the most requests
  on the first day. No release began then: no release is named, rather than the one that
  happens to be live.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import pandas as pd

#: An anomaly's dimension -> its column in ``ai_release_daily``.
COLUMNS = {"feature": "feature_name", "model": "model_name"}
#: A mix without rows (no release read yet).
EMPTY_MIX = pd.DataFrame(columns=["day", "feature_name", "model_name", "release", "requests"])
#: A day counts as changed while its value holds this share of the excess over the baseline.
HELD_SHARE = 0.5
#: How long before the change's first day a release may have begun serving it.
ROLLOUT_LEAD = timedelta(days=1)


@dataclass(frozen=True)
class ReleaseLink:
    release: str
    #: the first day the release served the dimension, in the window read
    first_served: date
    #: the first day of the change
    change_start: date

    def sentence(self) -> str:
        return (
            f"The change started on {self.change_start} with release {self.release} (first served {self.first_served})."
        )


def change_start(day: date, value: float, baseline: float, series: Mapping[date, float]) -> date:
    """The first day of the run of days up to ``day`` whose value held ``HELD_SHARE`` of the
    excess of ``value`` over ``baseline`` (a day without a value ends the run)."""
    bar = baseline + (value - baseline) * HELD_SHARE
    start = day
    while (before := series.get(start - timedelta(days=1))) is not None and before >= bar:
        start -= timedelta(days=1)
    return start


def first_served(mix: pd.DataFrame, dimension: str, name: str) -> dict[str, date]:
    """Release -> the first day it served ``name`` (a feature or a model), in ``mix`` (rows of
    ``ai_release_daily``); a request without a release names none."""
    rows = mix[(mix[COLUMNS[dimension]] == name) & mix["release"].notna() & (mix["requests"] > 0)]
    return {release: min(days) for release, days in rows.groupby("release")["day"]}


def started_with(mix: pd.DataFrame, dimension: str, name: str, start: date) -> ReleaseLink | None:
    """The release that began serving ``name`` when its change started (see the module's
    rules), or None."""
    if mix.empty:
        return None
    began = {r: d for r, d in first_served(mix, dimension, name).items() if start - ROLLOUT_LEAD <= d <= start}
    if not began:
        return None
    on_start = mix[(mix[COLUMNS[dimension]] == name) & (mix["day"] == start) & mix["release"].isin(began)]
    requests = on_start.groupby("release")["requests"].sum()
    release = max(began, key=lambda r: (int(requests.get(r, 0)), began[r], r))
    return ReleaseLink(release, began[release], start)


def _daily_values(rows: pd.DataFrame, metric: str) -> dict[date, float]:
    """A week's rollup rows of one feature or model as day -> ``metric`` (cost per request,
    failure rate or p95)."""
    values = {}
    for row in rows.to_dict("records"):
        if metric == "cost_per_request":
            value = float(row["cost_usd"]) / row["requests"] if row["requests"] else None
        else:
            value = row[metric]
        if value is not None and not pd.isna(value):
            values[row["day"]] = float(value)
    return values


def regression_link(
    rows: pd.DataFrame, dimension: str, name: str, metric: str, previous: float, current: float, mix: pd.DataFrame
) -> ReleaseLink | None:
    """The release a week-over-week regression started with: its first day is the week's
    first day whose value held ``HELD_SHARE`` of the change (``rows``: the week's rollup rows
    of ``name``; ``mix``: ``ai_release_daily`` over this week and the one before)."""
    bar = previous + (current - previous) * HELD_SHARE
    days = sorted(day for day, value in _daily_values(rows, metric).items() if value >= bar)
    return started_with(mix, dimension, name, days[0]) if days else None
