"""The immutable usage ledger and what the daily job asks of it.

The pipeline only reads these tables (they belong to the application); their
definitions here let tests and the demo create a ledger on SQLite, MariaDB or
PostgreSQL with the same columns the application writes.

:func:`day_requests_select` is the day's requests joined to their plan and price tier,
the one row set the daily aggregate groups (:mod:`include.economics.rollups`); no
request row ever comes to Python.
"""

from __future__ import annotations

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


#: The plan of a request whose user has none in effect.
NO_PLAN = "none"

#: MariaDB/MySQL only: how much memory the daily job's GROUP BY temporary tables may use
#: (at the 16 MB default they spill to disk: several times slower on a million-row day).
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
    minute_of_day = sa.cast(
        sa.extract("hour", logs.created_at) * 60 + sa.extract("minute", logs.created_at), sa.Integer
    )
    return (
        sa.select(
            logs.user_id,
            logs.feature_name,
            logs.model_name,
            sa.func.coalesce(plans.plan, NO_PLAN).label("plan"),
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
