"""The immutable usage ledger and what the daily job asks of it.

The pipeline only reads these tables (they belong to the application); their
definitions here let tests and the demo create a ledger on SQLite, MariaDB or
PostgreSQL with the same columns the application writes.

:func:`snapshot` copies the day's requests, joined to their plan and price tier,
into a session-temporary table that every daily aggregate then reads
(:mod:`include.economics.rollups`); no request row ever comes to Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.prices import PriceBook

metadata = sa.MetaData()
#: BIGINT ids, but INTEGER on SQLite, where only an INTEGER PRIMARY KEY auto-increments.
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

ai_usage_logs = sa.Table(
    "ai_usage_logs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("feature_name", sa.String(100)),
    sa.Column("model_name", sa.String(100)),
    sa.Column("input_tokens", sa.BigInteger),
    sa.Column("cached_input_tokens", sa.BigInteger),
    sa.Column("output_tokens", sa.BigInteger),
    sa.Column("reasoning_tokens", sa.BigInteger, nullable=True),
    sa.Column("total_tokens", sa.BigInteger),
    sa.Column("estimated_cost", sa.Numeric(18, 6)),
    sa.Column("request_duration_ms", sa.Integer),
    sa.Column("success", sa.Boolean),
    sa.Column("error_type", sa.String(100), nullable=True),
    sa.Column("release", sa.String(50), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_ai_usage_logs_created_at", "created_at"),
)

user_plans = sa.Table(
    "user_plans",
    metadata,
    sa.Column("user_id", sa.BigInteger, nullable=False),
    sa.Column("plan", sa.String(50), nullable=False),
    sa.Column("valid_from", sa.DateTime, nullable=False),
    sa.Column("valid_to", sa.DateTime, nullable=True),
    sa.Index("ix_user_plans_user", "user_id", "valid_from"),
)

revenue_events = sa.Table(
    "revenue_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("plan", sa.String(50)),
    sa.Column("amount", sa.Numeric(18, 6)),
    sa.Column("currency", sa.String(3)),
    sa.Column("kind", sa.String(20)),
    sa.Column("occurred_at", sa.DateTime, nullable=False),
    sa.Index("ix_revenue_events_occurred_at", "occurred_at"),
)

fx_rates = sa.Table(
    "fx_rates",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("usd_per_unit", sa.Numeric(18, 8), nullable=False),
    sa.PrimaryKeyConstraint("day", "currency"),
)

SUMS = [
    "requests",
    "failures",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "total_tokens",
]


#: MariaDB/MySQL only: how much memory one daily job's GROUP BY temporary tables may use.
AGGREGATE_MEMORY_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class DayWindow:
    """The UTC calendar day ``[00:00, 24:00)``."""

    day: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.day, time.min)

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=1)


def create_ledger_schema(engine: Engine) -> None:
    """Create the ledger tables (tests and the demo only: the pipeline never writes them)."""
    metadata.create_all(engine)


def _tier_expression(book: PriceBook, day: date) -> sa.ColumnElement[str]:
    """'long' when the request's model has a long-context tier that day and its input
    is above the threshold, else 'standard' - evaluated by the database, row by row."""
    logs = ai_usage_logs.c
    whens = [
        (sa.and_(logs.model_name == model, logs.input_tokens > row.long_context_threshold), "long")
        for model, row in sorted(book.rows_for_day(day).items())
        if row.long is not None
    ]
    return sa.case(*whens, else_="standard") if whens else sa.literal("standard")


def day_requests_select(book: PriceBook, day: date) -> sa.Select:
    """The day's requests, each with the plan in effect at its ``created_at`` (``none``
    without one), its price tier and its minute of the day: the one row set every
    daily aggregate reads."""
    logs, plans = ai_usage_logs.c, user_plans.c
    window = DayWindow(day)
    joined = ai_usage_logs.outerjoin(
        user_plans,
        sa.and_(
            plans.user_id == logs.user_id,
            plans.valid_from <= logs.created_at,
            sa.or_(plans.valid_to.is_(None), logs.created_at < plans.valid_to),
        ),
    )
    minute_of_day = sa.extract("hour", logs.created_at) * 60 + sa.extract("minute", logs.created_at)
    return (
        sa.select(
            logs.user_id,
            logs.feature_name,
            logs.model_name,
            sa.func.coalesce(plans.plan, "none").label("plan"),
            _tier_expression(book, day).label("tier"),
            logs.input_tokens,
            logs.cached_input_tokens,
            logs.output_tokens,
            logs.total_tokens,
            logs.estimated_cost,
            logs.request_duration_ms,
            logs.success,
            minute_of_day.label("minute_of_day"),
        )
        .select_from(joined)
        .where(logs.created_at >= window.start, logs.created_at < window.end)
    )


def _snapshot_table() -> sa.Table:
    return sa.Table(
        "bp_day_requests",
        sa.MetaData(),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("feature_name", sa.String(100)),
        sa.Column("model_name", sa.String(100)),
        sa.Column("plan", sa.String(50)),
        sa.Column("tier", sa.String(10)),
        sa.Column("input_tokens", sa.BigInteger),
        sa.Column("cached_input_tokens", sa.BigInteger),
        sa.Column("output_tokens", sa.BigInteger),
        sa.Column("total_tokens", sa.BigInteger),
        sa.Column("estimated_cost", sa.Numeric(18, 6)),
        sa.Column("request_duration_ms", sa.Integer),
        sa.Column("success", sa.Boolean),
        sa.Column("minute_of_day", sa.Integer),
        prefixes=["TEMPORARY"],
    )


@dataclass
class DaySnapshot:
    """The day's joined requests, copied once into a session-temporary table.

    Every daily aggregate (per-user sums and percentiles, duration histograms, tokens
    per minute) reads this copy instead of re-running the plan join over the ledger: on a million-row
    MariaDB day that made the whole computation several times faster.
    """

    connection: sa.Connection
    table: sa.Table
    book: PriceBook
    day: date


@contextmanager
def snapshot(engine: Engine, book: PriceBook, day: date) -> Iterator[DaySnapshot]:
    """Copy the day's requests into a temporary table for the length of the block."""
    table = _snapshot_table()
    with engine.connect() as connection:
        if connection.dialect.name == "mysql":
            # this session's in-memory GROUP BY tables: at the 16 MB default, the day's
            # aggregates over wide VARCHAR keys spill to disk (per-minute tokens on a
            # million-row day: 18 s spilled, 3.5 s in memory; see bench/economics_day.py)
            connection.exec_driver_sql(
                f"SET SESSION max_heap_table_size = {AGGREGATE_MEMORY_BYTES}, tmp_table_size = {AGGREGATE_MEMORY_BYTES}"
            )
        table.create(connection)
        try:
            connection.execute(
                table.insert().from_select([c.name for c in table.columns], day_requests_select(book, day))
            )
            yield DaySnapshot(connection, table, book, day)
        finally:
            # dropped and committed explicitly: MariaDB keeps temporary tables past a rollback,
            # and SQLite's driver would roll the DROP back; the pool then reuses a clean session
            table.drop(connection)
            connection.commit()
