"""The daily rollup tables, all aggregated where the data is.

* the per-user level (``ai_cost_daily``) is one ``GROUP BY`` over the day's snapshot:
  request and token sums split by price tier (priced here, exactly, one vectorized step
  per model) and p50/p95 duration;
* the coarser levels add the per-user sums up in pandas (a few hundred thousand rows at
  most), count DAU from them, and take their percentiles from a duration histogram the
  database builds;
* peak tokens per minute comes from one more ``GROUP BY`` on the minute of the day.

Percentiles are ``percentile_cont`` (linear interpolation), exact: the database ranks
each group's durations with a running sum and returns, per quantile, the two values
either side of the quantile's position - over the raw rows for the per-user level,
over ``(duration, count)`` histogram rows for the coarse ones, where that is far
fewer rows. The same SQL runs on SQLite, MariaDB and PostgreSQL (MariaDB's own
``PERCENTILE_CONT`` took minutes on a million rows; see the closing note of issue 4).
"""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.ledger import SUMS, DaySnapshot, snapshot
from include.economics.prices import PriceBook

#: Rollup level -> its grouping columns. ``usage`` is the whole day.
LEVELS: dict[str, list[str]] = {
    "cost": ["user_id", "feature_name", "model_name", "plan"],
    "feature": ["feature_name"],
    "model": ["model_name"],
    "plan": ["plan"],
    "usage": [],
}
TABLES = {
    "cost": "ai_cost_daily",
    "feature": "ai_feature_daily",
    "model": "ai_model_daily",
    "plan": "ai_plan_daily",
    "usage": "ai_usage_daily",
}
#: Quantiles as exact fractions, so the rank arithmetic in SQL is integer arithmetic.
QUANTILES = {"p50_ms": Fraction(1, 2), "p95_ms": Fraction(19, 20)}
PRICED_TOKENS = ("input_tokens", "cached_input_tokens", "output_tokens")
LONG = "long_"


def _tuples(day_snapshot: DaySnapshot, query: sa.Select) -> list[tuple]:
    """The result as plain tuples: pandas probes SQLAlchemy rows for attributes, which
    costs seconds on the per-user level's million rows."""
    return [tuple(row) for row in day_snapshot.connection.execute(query)]


def _ranked(source: sa.FromClause, keys: list[str], weight: sa.ColumnElement, *columns: str) -> sa.Subquery:
    """``source`` with each row's running weight (``rank_end``) and its group's total
    weight (``ranked``), durations ascending within ``keys``."""
    partition = [source.c[key] for key in keys] or None
    duration = source.c.request_duration_ms
    return sa.select(
        *(source.c[name] for name in (*keys, *columns)),
        duration,
        weight.label("weight"),
        sa.func.sum(weight).over(partition_by=partition, order_by=duration, rows=(None, 0)).label("rank_end"),
        sa.func.sum(weight).over(partition_by=partition).label("ranked"),
    ).subquery("ranked_durations")


def _percentile_bounds(ranked: sa.Subquery) -> list[sa.ColumnElement]:
    """Aggregates giving, per quantile q, the values at ranks floor(q(n-1)) and the
    next one; a row covers ranks ``[rank_end - weight, rank_end)``."""
    r = ranked.c
    columns = [sa.func.max(r.ranked).label("ranked")]
    for name, q in QUANTILES.items():
        position = q.numerator * (r.ranked - 1)  # q(n-1), times q's denominator
        den = q.denominator
        for suffix, shift in (("low", 0), ("high", 1)):
            covers = sa.and_(den * (r.rank_end - r.weight - shift) <= position, position < den * (r.rank_end - shift))
            columns.append(sa.func.max(sa.case((covers, r.request_duration_ms))).label(f"{name}_{suffix}"))
    return columns


def _interpolate(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn the low/high bounds into the percentile_cont values, in place of the bounds."""
    ranked = frame.pop("ranked").astype("int64")
    for name, q in QUANTILES.items():
        low = frame.pop(f"{name}_low").astype(float)
        high = frame.pop(f"{name}_high").astype(float).fillna(low)  # no next rank: q(n-1) is whole
        fraction = (q.numerator * (ranked - 1) % q.denominator) / q.denominator
        frame[name] = (low + fraction * (high - low)).round(1)
    return frame


def cost_groups(day_snapshot: DaySnapshot) -> pd.DataFrame:
    """The per-user level: sums, exact cost, p50/p95 per (user, feature, model, plan).

    ``cost_usd`` is a Decimal, or None when the model has no price that day (the
    data-quality gate reports those); ``estimated_cost`` is the app's own estimate.
    """
    keys = LEVELS["cost"]
    ranked = _ranked(
        day_snapshot.table,
        keys,
        sa.literal_column("1"),
        "tier",
        "success",
        *SUMS[2:],
        "estimated_cost",
    )
    r = ranked.c
    long_tier = r.tier == "long"
    query = sa.select(
        *(r[key] for key in keys),
        sa.func.count().label("requests"),
        sa.func.sum(sa.case((r.success.is_(True), 0), else_=1)).label("failures"),
        *(sa.func.sum(r[column]).label(column) for column in SUMS[2:]),
        *(sa.func.sum(sa.case((long_tier, r[column]), else_=0)).label(LONG + column) for column in PRICED_TOKENS),
        sa.func.sum(r.estimated_cost).label("estimated_cost"),
        *_percentile_bounds(ranked),
    ).group_by(*(r[key] for key in keys))
    columns = [*keys, *SUMS, *(LONG + c for c in PRICED_TOKENS), "estimated_cost", "ranked"]
    frame = pd.DataFrame(
        _tuples(day_snapshot, query), columns=[*columns, *(f"{n}_{s}" for n in QUANTILES for s in ("low", "high"))]
    )
    if frame.empty:
        return pd.DataFrame(columns=[*keys, *SUMS, "estimated_cost", "cost_usd", *QUANTILES])
    for column in [*SUMS, *(LONG + c for c in PRICED_TOKENS)]:
        frame[column] = frame[column].astype("int64")
    frame["cost_usd"] = _price(frame, day_snapshot)
    frame = _interpolate(frame.drop(columns=[LONG + c for c in PRICED_TOKENS]))
    return frame.sort_values(keys, ignore_index=True)


def _price(frame: pd.DataFrame, day_snapshot: DaySnapshot) -> pd.Series:
    """Exact cost per group: the standard rates on its standard-tier token sums plus
    the long-context rates on its long-tier sums (cost is linear in the sums)."""
    rows = day_snapshot.book.rows_for_day(day_snapshot.day)
    cost = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for model, index in frame.groupby("model_name").indices.items():
        row = rows.get(model)
        if row is None:
            continue
        part = frame.iloc[index]
        # Python ints in object arrays: exact, and no int64 overflow on huge sums
        long = [part[LONG + column].to_numpy(dtype=object) for column in PRICED_TOKENS]
        everything = [part[column].to_numpy(dtype=object) for column in PRICED_TOKENS]
        standard = [total - in_long for total, in_long in zip(everything, long, strict=True)]
        values = [row.standard.to_usd(units) for units in row.standard.units(*standard)]
        if row.long is not None:
            long_costs = (row.long.to_usd(units) for units in row.long.units(*long))
            values = [value + long_cost for value, long_cost in zip(values, long_costs, strict=True)]
        cost.iloc[index] = values
    return cost


def level_percentiles(day_snapshot: DaySnapshot, keys: list[str]) -> pd.DataFrame:
    """p50_ms and p95_ms per ``keys``, from the database's duration histogram."""
    requests = day_snapshot.table.c
    grouping = [*(requests[key] for key in keys), requests.request_duration_ms]
    histogram = (
        sa.select(*grouping, sa.func.count().label("requests")).group_by(*grouping).subquery("duration_histogram")
    )
    ranked = _ranked(histogram, keys, histogram.c.requests)
    query = sa.select(*(ranked.c[key] for key in keys), *_percentile_bounds(ranked))
    if keys:
        query = query.group_by(*(ranked.c[key] for key in keys))
    bounds = [f"{n}_{s}" for n in QUANTILES for s in ("low", "high")]
    frame = pd.DataFrame(_tuples(day_snapshot, query), columns=[*keys, "ranked", *bounds])
    frame = frame[frame["ranked"].notna()]
    return _interpolate(frame) if not frame.empty else pd.DataFrame(columns=[*keys, *QUANTILES])


def minute_tokens(day_snapshot: DaySnapshot) -> pd.DataFrame:
    """Tokens per (feature, model, plan, minute of day): every level's peak comes from it."""
    requests = day_snapshot.table.c
    keys = [requests.feature_name, requests.model_name, requests.plan, requests.minute_of_day]
    query = sa.select(*keys, sa.func.sum(requests.total_tokens)).group_by(*keys)
    frame = pd.DataFrame(
        _tuples(day_snapshot, query),
        columns=["feature_name", "model_name", "plan", "minute", "total_tokens"],
    )
    frame["minute"] = frame["minute"].astype(int)
    frame["total_tokens"] = frame["total_tokens"].astype("int64")
    return frame


def _peaks(minutes: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    per_minute = minutes.groupby([*keys, "minute"], dropna=False)["total_tokens"].sum()
    if not keys:
        return pd.DataFrame([{"peak_tokens_per_minute": int(per_minute.max()) if len(per_minute) else 0}])
    return per_minute.groupby(level=list(range(len(keys)))).max().rename("peak_tokens_per_minute").reset_index()


def build_rollups(
    day: date,
    groups: pd.DataFrame,
    percentiles: dict[str, pd.DataFrame],
    minutes: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Every rollup table for ``day``, keyed by warehouse table name.

    ``groups`` is :func:`cost_groups`; ``percentiles`` holds each coarser level's
    :func:`level_percentiles`. Sums and DAU of the coarser levels come from ``groups``.
    """
    if groups.empty:
        return {}
    columns = [*SUMS, "cost_usd"]  # cost_usd holds Decimals: pandas adds them exactly
    tables = {"cost": groups[[*LEVELS["cost"], *columns, *QUANTILES]]}
    for level, keys in LEVELS.items():
        if level == "cost":
            continue
        if keys:
            by_keys = groups.groupby(keys, dropna=False)
            table = by_keys[columns].sum().join(by_keys["user_id"].nunique().rename("dau")).reset_index()
            table = table.merge(percentiles[level], on=keys).merge(_peaks(minutes, keys), on=keys)
        else:
            table = pd.DataFrame(
                [
                    {
                        **{column: groups[column].sum() for column in columns},
                        "dau": groups["user_id"].nunique(),
                        **percentiles[level].iloc[0].to_dict(),
                        **_peaks(minutes, keys).iloc[0].to_dict(),
                    }
                ]
            )
        table["failure_rate"] = (table["failures"] / table["requests"]).round(6)
        tables[level] = table
    dated = {}
    for level, table in tables.items():
        table = table.copy()
        table.insert(0, "day", day)
        dated[TABLES[level]] = table.sort_values(["day", *LEVELS[level]], ignore_index=True)
    return dated


def rollups_of(day_snapshot: DaySnapshot) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The per-user groups (with the app's estimates, for reconciliation) and every
    rollup table, from one snapshot."""
    groups = cost_groups(day_snapshot)
    percentiles = {level: level_percentiles(day_snapshot, keys) for level, keys in LEVELS.items() if level != "cost"}
    return groups, build_rollups(day_snapshot.day, groups, percentiles, minute_tokens(day_snapshot))


def compute_rollups(engine: Engine, book: PriceBook, day: date) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """:func:`rollups_of` on a snapshot of its own."""
    with snapshot(engine, book, day) as day_snapshot:
        return rollups_of(day_snapshot)
