"""The daily rollup tables, built from the priced groups plus three pushed-down
statistics that sums can't give: p50/p95 request duration, daily active users, and
peak tokens per minute.

Percentiles are ``percentile_cont`` (linear interpolation) everywhere: PostgreSQL's
ordered-set aggregate, MariaDB's window function, and for SQLite (the demo's small
ledger, which has no percentile function) pandas' ``quantile`` with the same
interpolation - so the three databases give the same numbers.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.ledger import SUMS, day_requests
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


def duration_stats(engine: Engine, book: PriceBook, day: date, keys: list[str]) -> pd.DataFrame:
    """p50_ms, p95_ms and dau per ``keys`` for the day."""
    requests = day_requests(book, day)
    columns = [requests.c[key] for key in keys]
    dialect = engine.dialect.name
    with engine.connect() as connection:
        if dialect == "postgresql":
            query = sa.select(
                *columns,
                *(
                    sa.func.percentile_cont(q).within_group(requests.c.request_duration_ms).label(name)
                    for name, q in QUANTILES.items()
                ),
                sa.func.count(sa.distinct(requests.c.user_id)).label("dau"),
            ).group_by(*columns)
            frame = pd.DataFrame(connection.execute(query).mappings().all())
        elif dialect == "mysql":
            percentiles = sa.select(
                *columns,
                *(
                    sa.func.percentile_cont(q)
                    .within_group(requests.c.request_duration_ms)
                    .over(partition_by=columns or None)
                    .label(name)
                    for name, q in QUANTILES.items()
                ),
            ).distinct()
            users = sa.select(*columns, sa.func.count(sa.distinct(requests.c.user_id)).label("dau")).group_by(*columns)
            frame = pd.DataFrame(connection.execute(percentiles).mappings().all())
            dau = pd.DataFrame(connection.execute(users).mappings().all())
            frame = frame.merge(dau, on=keys) if keys else frame.assign(dau=dau["dau"].iloc[0] if len(dau) else 0)
        else:
            raw = pd.DataFrame(
                connection.execute(
                    sa.select(*columns, requests.c.user_id.label("_user"), requests.c.request_duration_ms)
                )
                .mappings()
                .all()
            )
            frame = _pandas_stats(raw, keys)
    if frame.empty:
        return pd.DataFrame(columns=[*keys, *QUANTILES, "dau"])
    for name in QUANTILES:
        frame[name] = frame[name].astype(float).round(1)
    frame["dau"] = frame["dau"].astype("int64")
    return frame


def _pandas_stats(raw: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    if raw.empty:
        return raw
    durations = raw["request_duration_ms"].astype(float)
    if not keys:
        return pd.DataFrame(
            [
                {
                    **{name: durations.quantile(q, interpolation="linear") for name, q in QUANTILES.items()},
                    "dau": raw["_user"].nunique(),
                }
            ]
        )
    grouped = raw.assign(request_duration_ms=durations).groupby(keys, dropna=False)
    frame = pd.concat(
        [
            grouped["request_duration_ms"].quantile(q, interpolation="linear").rename(name)
            for name, q in QUANTILES.items()
        ]
        + [grouped["_user"].nunique().rename("dau")],
        axis=1,
    )
    return frame.reset_index()


def minute_tokens(engine: Engine, book: PriceBook, day: date) -> pd.DataFrame:
    """Tokens per (feature, model, plan, minute of day): every level's peak comes from it."""
    requests = day_requests(book, day).c
    minute = (sa.extract("hour", requests.created_at) * 60 + sa.extract("minute", requests.created_at)).label("minute")
    keys = [requests.feature_name, requests.model_name, requests.plan, minute]
    query = sa.select(*keys, sa.func.sum(requests.total_tokens).label("total_tokens")).group_by(*keys)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).mappings().all())
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


def compute_rollups(engine: Engine, book: PriceBook, day: date, groups: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Query the statistics for every level and build the tables."""
    stats = {level: duration_stats(engine, book, day, keys) for level, keys in LEVELS.items()}
    return build_rollups(day, groups, stats, minute_tokens(engine, book, day))
