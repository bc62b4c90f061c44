"""The daily rollup tables, built from the priced groups plus three pushed-down
statistics that sums can't give: p50/p95 request duration, daily active users, and
peak tokens per minute.

Percentiles are ``percentile_cont`` (linear interpolation), read exactly off a duration
histogram the database computes - the same SQL on SQLite, MariaDB and PostgreSQL, so
the three give the same numbers.
"""

from __future__ import annotations

from datetime import date

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
QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95}


def percentile_from_counts(values: list[float], counts: list[int], q: float) -> float:
    """``percentile_cont(q)`` of a frequency table: ``values`` ascending, ``counts`` >= 1."""
    position = q * (sum(counts) - 1)
    low_rank = int(position)

    def value_at(rank: int) -> float:
        seen = 0
        for value, count in zip(values, counts, strict=True):
            seen += count
            if rank < seen:
                return value
        return values[-1]

    low = value_at(low_rank)
    fraction = position - low_rank
    return low if fraction == 0 else low + fraction * (value_at(low_rank + 1) - low)


def _stream_percentiles(connection, query: sa.Select, keys: list[str]) -> list[dict]:
    """Walk the (keys, duration, count) histogram in key order, one group at a time."""
    rows: list[dict] = []
    current, values, counts = None, [], []

    def close() -> None:
        percentiles = {name: percentile_from_counts(values, counts, q) for name, q in QUANTILES.items()}
        rows.append({**dict(zip(keys, current, strict=True)), **percentiles})

    # stream on the statement, not the connection (which SQLAlchemy would change in place)
    result = connection.execute(query.execution_options(stream_results=True, yield_per=50_000))
    for row in result:
        group = tuple(row[: len(keys)])
        if group != current and current is not None:
            close()
            values, counts = [], []
        current = group
        values.append(float(row[len(keys)]))
        counts.append(int(row[len(keys) + 1]))
    if current is not None:
        close()
    return rows


def duration_stats(day_snapshot: DaySnapshot, keys: list[str]) -> pd.DataFrame:
    """p50_ms, p95_ms and dau per ``keys`` for the day.

    The database returns a histogram - request count per (keys, duration in ms), in
    order - and the exact ``percentile_cont`` is read off it group by group, streamed
    with bounded memory. Durations are whole milliseconds, so nothing is approximated,
    and it is the same SQL on every dialect (MariaDB's window-function percentiles
    took 17 s per rollup level on a million rows; see the closing note of issue 4).
    """
    requests = day_snapshot.table.c
    columns = [requests[key] for key in keys]
    histogram = (
        sa.select(*columns, requests.request_duration_ms, sa.func.count())
        .group_by(*columns, requests.request_duration_ms)
        .order_by(*columns, requests.request_duration_ms)
    )
    users = sa.select(*columns, sa.func.count(sa.distinct(requests.user_id)).label("dau")).group_by(*columns)
    connection = day_snapshot.connection
    percentiles = pd.DataFrame(_stream_percentiles(connection, histogram, keys), columns=[*keys, *QUANTILES])
    dau = pd.DataFrame(connection.execute(users).mappings().all(), columns=[*keys, "dau"])
    if percentiles.empty:
        return pd.DataFrame(columns=[*keys, *QUANTILES, "dau"])
    frame = percentiles.merge(dau, on=keys) if keys else percentiles.assign(dau=dau["dau"].iloc[0])
    for name in QUANTILES:
        frame[name] = frame[name].astype(float).round(1)
    frame["dau"] = frame["dau"].astype("int64")
    return frame


def minute_tokens(day_snapshot: DaySnapshot) -> pd.DataFrame:
    """Tokens per (feature, model, plan, minute of day): every level's peak comes from it."""
    requests = day_snapshot.table.c
    minute = (sa.extract("hour", requests.created_at) * 60 + sa.extract("minute", requests.created_at)).label("minute")
    keys = [requests.feature_name, requests.model_name, requests.plan, minute]
    query = sa.select(*keys, sa.func.sum(requests.total_tokens).label("total_tokens")).group_by(*keys)
    frame = pd.DataFrame(day_snapshot.connection.execute(query).mappings().all())
    if frame.empty:
        return pd.DataFrame(columns=["feature_name", "model_name", "plan", "minute", "total_tokens"])
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
    stats: dict[str, pd.DataFrame],
    minutes: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """Every rollup table for ``day``, keyed by warehouse table name."""
    tables: dict[str, pd.DataFrame] = {}
    for level, keys in LEVELS.items():
        if groups.empty:
            continue
        columns = [*SUMS, "cost_usd"]  # cost_usd holds Decimals: pandas adds them exactly
        table = (
            groups.groupby(keys, dropna=False)[columns].sum().reset_index()
            if keys
            else pd.DataFrame([{column: groups[column].sum() for column in columns}])
        )
        table = table.merge(stats[level], on=keys) if keys else table.assign(**stats[level].iloc[0].to_dict())
        if level != "cost":
            table["failure_rate"] = (table["failures"] / table["requests"]).round(6)
            peaks = _peaks(minutes, keys)
            table = table.merge(peaks, on=keys) if keys else table.assign(**peaks.iloc[0].to_dict())
        else:
            table = table.drop(columns=["dau"])
        table.insert(0, "day", day)
        tables[TABLES[level]] = table.sort_values(["day", *keys], ignore_index=True)
    return tables


def rollups_of(day_snapshot: DaySnapshot, groups: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Query the statistics of every level on the snapshot and build the tables."""
    stats = {level: duration_stats(day_snapshot, keys) for level, keys in LEVELS.items()}
    return build_rollups(day_snapshot.day, groups, stats, minute_tokens(day_snapshot))


def compute_rollups(engine: Engine, book: PriceBook, day: date, groups: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """:func:`rollups_of` on a snapshot of its own."""
    with snapshot(engine, book, day) as day_snapshot:
        return rollups_of(day_snapshot, groups)
