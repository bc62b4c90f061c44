"""The immutable usage ledger and what the daily job asks of it.

The pipeline only reads these tables (they belong to the application); their
definitions here let tests and the demo create a ledger on SQLite, MariaDB or
PostgreSQL with the same columns the application writes.

:func:`day_groups` pushes the work down to the database: one ``GROUP BY`` over the
day's requests returns token sums per (user, feature, model, plan, price tier), never
the requests themselves. Cost is linear inside such a group (see
:mod:`include.economics.prices`), so the Python side prices a few thousand groups
instead of millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import pandas as pd
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

GROUP_KEYS = ["user_id", "feature_name", "model_name", "plan", "tier"]
SUMS = [
    "requests",
    "failures",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "total_tokens",
]


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
    without one) and its price tier: the one row set every daily query reads."""
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
    return (
        sa.select(
            logs.request_id,
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
            logs.created_at,
        )
        .select_from(joined)
        .where(logs.created_at >= window.start, logs.created_at < window.end)
    )


def _snapshot_table() -> sa.Table:
    return sa.Table(
        "bp_day_requests",
        sa.MetaData(),
        sa.Column("request_id", sa.String(64)),
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
        sa.Column("created_at", sa.DateTime),
        prefixes=["TEMPORARY"],
    )


@dataclass
class DaySnapshot:
    """The day's joined requests, copied once into a session-temporary table.

    Every daily aggregate (sums, duration histograms, DAU, tokens per minute) reads
    this copy instead of re-running the plan join over the ledger: on a million-row
    MariaDB day that made the whole computation several times faster.
    """

    connection: sa.Connection
    table: sa.Table
    book: PriceBook
    day: date

    def groups(self) -> pd.DataFrame:
        """Token sums per (user, feature, model, plan, tier), priced.

        ``cost_usd`` is the exact Decimal cost of each group, or None when the model has
        no price that day (the data-quality gate reports those).
        """
        requests = self.table.c
        failed = sa.case((requests.success.is_(True), 0), else_=1)
        keys = [requests[key] for key in GROUP_KEYS]
        query = sa.select(
            *keys,
            sa.func.count().label("requests"),
            sa.func.sum(failed).label("failures"),
            *(sa.func.sum(requests[column]).label(column) for column in SUMS[2:]),
            sa.func.sum(requests.estimated_cost).label("estimated_cost"),
        ).group_by(*keys)
        frame = pd.DataFrame(self.connection.execute(query).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=[*GROUP_KEYS, *SUMS, "estimated_cost", "cost_usd"])
        for column in SUMS:
            frame[column] = frame[column].astype("int64")
        rows = self.book.rows_for_day(self.day)
        frame["cost_usd"] = [
            _group_cost(rows.get(model), tier, inp, cached, out)
            for model, tier, inp, cached, out in zip(
                frame["model_name"],
                frame["tier"],
                frame["input_tokens"],
                frame["cached_input_tokens"],
                frame["output_tokens"],
                strict=True,
            )
        ]
        return frame.sort_values(GROUP_KEYS, ignore_index=True)


@contextmanager
def snapshot(engine: Engine, book: PriceBook, day: date) -> Iterator[DaySnapshot]:
    """Copy the day's requests into a temporary table for the length of the block."""
    table = _snapshot_table()
    with engine.connect() as connection:
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


def day_groups(engine: Engine, book: PriceBook, day: date) -> pd.DataFrame:
    """:meth:`DaySnapshot.groups` on a snapshot of its own."""
    with snapshot(engine, book, day) as day_snapshot:
        return day_snapshot.groups()


def _group_cost(row, tier: str, input_tokens: int, cached: int, output: int):
    if row is None:
        return None
    rates = row.long if tier == "long" else row.standard
    return rates.cost(input_tokens, cached, output)
