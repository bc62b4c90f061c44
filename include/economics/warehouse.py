"""The warehouse tables the daily job publishes, and how it publishes them.

Publishing a day replaces that day: in one transaction every table's rows for the day
are deleted and the new ones inserted (the per-user level chunk by chunk), so re-running a day (or clearing the task)
never duplicates anything, and a failure leaves the previous version in place.
Money is DECIMAL(18,6) USD.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()
Money = sa.Numeric(18, 6)


def _counts() -> list[sa.Column]:
    return [
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("total_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_usd", Money, nullable=False),
        sa.Column("p50_ms", sa.Float),
        sa.Column("p95_ms", sa.Float),
    ]


def _dimension_table(name: str, *keys: sa.Column) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("day", sa.Date, nullable=False),
        *keys,
        *_counts(),
        sa.Column("failure_rate", sa.Float),
        sa.Column("peak_tokens_per_minute", sa.BigInteger),
        sa.Column("dau", sa.BigInteger),
        sa.Index(f"ix_{name}_day", "day"),
    )


ai_cost_daily = sa.Table(
    "ai_cost_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("user_id", sa.BigInteger),
    sa.Column("feature_name", sa.String(100)),
    sa.Column("model_name", sa.String(100)),
    sa.Column("plan", sa.String(50)),
    *_counts(),
    sa.Index("ix_ai_cost_daily_day", "day"),
)
ai_feature_daily = _dimension_table("ai_feature_daily", sa.Column("feature_name", sa.String(100)))
ai_model_daily = _dimension_table("ai_model_daily", sa.Column("model_name", sa.String(100)))
ai_plan_daily = _dimension_table("ai_plan_daily", sa.Column("plan", sa.String(50)))
ai_usage_daily = _dimension_table("ai_usage_daily")
#: The day's traffic per (feature, model, release) of the app: which release served what,
#: so an alert or the weekly review can name the release a change started with.
ai_release_daily = sa.Table(
    "ai_release_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("feature_name", sa.String(100)),
    sa.Column("model_name", sa.String(100)),
    sa.Column("release", sa.String(50)),
    sa.Column("requests", sa.BigInteger, nullable=False),
    sa.Column("failures", sa.BigInteger, nullable=False),
    sa.Column("total_tokens", sa.BigInteger, nullable=False),
    sa.Index("ix_ai_release_daily_day", "day"),
)
ai_margin_daily = sa.Table(
    "ai_margin_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("plan", sa.String(50), nullable=False),
    sa.Column("revenue_usd", Money, nullable=False),
    sa.Column("ai_cost_usd", Money, nullable=False),
    sa.Column("infra_cost_usd", Money, nullable=False),
    sa.Column("margin_usd", Money, nullable=False),
    sa.Column("margin_pct", sa.Numeric(9, 2)),
    sa.Index("ix_ai_margin_daily_day", "day"),
)
ai_anomalies = sa.Table(
    "ai_anomalies",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("signal", sa.String(20), nullable=False),
    sa.Column("dimension", sa.String(200), nullable=False),
    sa.Column("value", Money, nullable=False),
    sa.Column("baseline", Money, nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    #: the release the change started with (include.economics.releases), when the ledger names one
    sa.Column("release", sa.String(50)),
    sa.Index("ix_ai_anomalies_day", "day"),
)
#: Users who moved from the free plan to a paid one (include.economics.conversion), per
#: paid plan and in ``all``, over the users on the free plan at the start of the day.
ai_conversion_daily = sa.Table(
    "ai_conversion_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("plan", sa.String(50), nullable=False),
    sa.Column("free_users", sa.BigInteger, nullable=False),
    sa.Column("conversions", sa.BigInteger, nullable=False),
    sa.Column("conversion_pct", sa.Float),
    sa.Index("ix_ai_conversion_daily_day", "day"),
)
#: The gate's verdict per expectation: a published day always has its rows (the weekly
#: review's data-quality section reads them); a day whose gate failed has none.
ai_quality_daily = sa.Table(
    "ai_quality_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("suite", sa.String(50), nullable=False),
    sa.Column("expectation", sa.String(200), nullable=False),
    sa.Column("severity", sa.String(10), nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("failed_rows", sa.BigInteger, nullable=False),
    sa.Column("examples", sa.String(500)),
    sa.Index("ix_ai_quality_daily_day", "day"),
)
#: GPU fleets' share of the day: instance-hours (CloudWatch ActiveWorkers) and the cost
#: the margin carries, so the weekly review reads the same figures the margin used.
ai_fleet_daily = sa.Table(
    "ai_fleet_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("stage", sa.String(50), nullable=False),
    sa.Column("fleet", sa.String(100), nullable=False),
    sa.Column("gpu_hours", sa.Float),
    sa.Column("cost_usd", Money, nullable=False),
    sa.Column("cost_source", sa.String(20), nullable=False),
    sa.Index("ix_ai_fleet_daily_day", "day"),
)
#: Dev nodes' share of the day (gpu_dev_node): hours running, from their lifecycle events,
#: and the cost the margin carries, per node and owner.
ai_devnode_daily = sa.Table(
    "ai_devnode_daily",
    metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("stage", sa.String(50), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("owner", sa.String(100), nullable=False),
    sa.Column("instance_type", sa.String(50), nullable=False),
    sa.Column("node_hours", sa.Float, nullable=False),
    sa.Column("cost_usd", Money, nullable=False),
    sa.Index("ix_ai_devnode_daily_day", "day"),
)
TABLES: dict[str, sa.Table] = {table.name: table for table in metadata.sorted_tables}

#: The providers' bills and what our cost says of them (ai_billing_import): published on
#: their own, so a re-run of a day's economics never touches them, nor they it.
billing_metadata = sa.MetaData()
ai_billing_daily = sa.Table(
    "ai_billing_daily",
    billing_metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("account", sa.String(128), nullable=False),
    *(sa.Column(f"{c}_tokens", sa.BigInteger, nullable=False) for c in ("input", "cached", "output")),
    *(sa.Column(f"{c}_cost", Money, nullable=False) for c in ("input", "cached", "output", "other")),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("cost_usd", Money, nullable=False),
    sa.Index("ix_ai_billing_daily_day", "day"),
)
ai_billing_reconciliation = sa.Table(
    "ai_billing_reconciliation",
    billing_metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("model_name", sa.String(128), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("our_cost_usd", Money),
    sa.Column("billed_cost_usd", Money),
    sa.Column("drift_usd", Money),
    sa.Column("drift_pct", sa.Float),
    *(
        sa.Column(f"{who}_{c}_tokens", sa.BigInteger)
        for c in ("input", "cached", "output")
        for who in ("our", "billed")
    ),
    sa.Column("drifting", sa.String(1000)),
    sa.Index("ix_ai_billing_reconciliation_day", "day"),
)
BILLING_TABLES: dict[str, sa.Table] = {table.name: table for table in billing_metadata.sorted_tables}

#: The whole AWS bill of a day by stage, service and usage type (aws_spend_daily, from
#: Cost Explorer), each line in its seed 003 hotspot; GPU instance lines carry their fleet.
spend_metadata = sa.MetaData()
aws_spend_daily = sa.Table(
    "aws_spend_daily",
    spend_metadata,
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("stage", sa.String(50), nullable=False),
    sa.Column("service", sa.String(100), nullable=False),
    sa.Column("usage_type", sa.String(200), nullable=False),
    sa.Column("hotspot", sa.String(50), nullable=False),
    sa.Column("fleet", sa.String(100), nullable=False),
    sa.Column("cost_usd", Money, nullable=False),
    sa.Column("usage_quantity", sa.Float, nullable=False),
    sa.Column("usage_unit", sa.String(32), nullable=False),
    sa.Index("ix_aws_spend_daily_day", "day"),
)
SPEND_TABLES: dict[str, sa.Table] = {table.name: table for table in spend_metadata.sorted_tables}


def table_of(name: str) -> sa.Table:
    return (TABLES | BILLING_TABLES | SPEND_TABLES)[name]


def python_values(series: pd.Series) -> list:
    """A column as values every DB-API driver accepts: Python scalars, None for a missing
    value (never NaN), dates as ``date`` - converted a column at a time, not a value at a time."""
    if series.dtype.kind == "M":
        series = series.dt.date
    if series.dtype.kind in "fO":
        return series.astype(object).where(series.notna(), None).tolist()
    return series.tolist()


def columns_of(table: sa.Table, frame: pd.DataFrame) -> list[str]:
    """The table's columns, every one of which the frame must have."""
    columns = [column.name for column in table.columns]
    missing = set(columns) - set(frame.columns)
    if missing:
        raise ValueError(f"{table.name}: the frame lacks column(s) {', '.join(sorted(missing))}")
    return columns


def records(table: sa.Table, frame: pd.DataFrame) -> list[dict]:
    columns = columns_of(table, frame)
    values = [python_values(frame[column]) for column in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


#: A table's rows as one frame, or as chunks of one (the per-user level streams).
Rows = pd.DataFrame | Iterable[pd.DataFrame]


def migrate(engine: Engine) -> list[str]:
    """Bring the warehouse up to these definitions: create the tables it lacks and add the
    columns a table gained since it was created (nullable ones, which an existing row can
    hold: ``ALTER TABLE ... ADD COLUMN``, in place on every engine here). Return what was
    added, as ``table.column``; a second call adds nothing."""
    for definitions in (metadata, billing_metadata, spend_metadata):
        definitions.create_all(engine, checkfirst=True)
    inspector, quote = sa.inspect(engine), engine.dialect.identifier_preparer
    added = []
    with engine.begin() as connection:
        for table in (TABLES | BILLING_TABLES | SPEND_TABLES).values():
            there = {column["name"] for column in inspector.get_columns(table.name)}
            for column in (c for c in table.columns if c.name not in there):
                if not column.nullable:
                    raise RuntimeError(f"{table.name}.{column.name} is NOT NULL: it needs a migration with a default")
                connection.exec_driver_sql(
                    f"ALTER TABLE {quote.format_table(table)} ADD COLUMN {quote.format_column(column)} "
                    f"{column.type.compile(dialect=engine.dialect)}"
                )
                added.append(f"{table.name}.{column.name}")
    return added


def publish(engine: Engine, day: date, frames: Mapping[str, Rows]) -> dict[str, int]:
    """Replace ``day`` in every table given, in one transaction; return rows written per
    table. A table may come as chunks: they are inserted one at a time."""
    migrate(engine)
    written = {}
    with engine.begin() as connection:
        for name, rows in frames.items():
            table = table_of(name)
            connection.execute(table.delete().where(table.c.day == day))
            written[name] = 0
            for frame in [rows] if isinstance(rows, pd.DataFrame) else rows:
                if (frame["day"] != day).any():
                    raise ValueError(f"{name}: rows for another day than {day}")
                if len(frame):
                    _insert(connection, table, frame)
                written[name] += len(frame)
    return written


def _insert(connection: sa.Connection, table: sa.Table, frame: pd.DataFrame) -> None:
    """Insert the frame's rows. A driver with positional parameters (SQLite's, mysqlclient)
    takes them straight through DB-API ``executemany`` - SQLite's loop in C, mysqlclient's
    multi-row INSERTs - after SQLAlchemy's own conversion of each column (Decimal, dates):
    on the per-user level that is several times faster than SQLAlchemy building and
    converting one parameter dict per row. Others (psycopg2) go through SQLAlchemy's
    batched ``insertmanyvalues``."""
    compiled = table.insert().compile(dialect=connection.dialect)
    if not compiled.positional:
        connection.execute(table.insert(), records(table, frame))
        return
    columns = [table.c[name] for name in compiled.positiontup]
    values = []
    for column in columns:
        convert = column.type.bind_processor(connection.dialect)
        found = python_values(frame[column.name])
        values.append(found if convert is None else [None if v is None else convert(v) for v in found])
    connection.exec_driver_sql(compiled.string, list(zip(*values, strict=True)))


def read_days(engine: Engine, name: str, first: date, last: date) -> pd.DataFrame:
    """Rows of a published table between two days (inclusive); empty if it doesn't exist yet."""
    table = table_of(name)
    if not sa.inspect(engine).has_table(name):
        return pd.DataFrame(columns=[c.name for c in table.columns])
    query = sa.select(table).where(table.c.day >= first, table.c.day <= last).order_by(table.c.day)
    with engine.connect() as connection:
        frame = pd.DataFrame(connection.execute(query).mappings().all(), columns=[c.name for c in table.columns])
    for column in table.columns:
        if isinstance(column.type, sa.Numeric) and not isinstance(column.type, sa.Float):
            frame[column.name] = [None if v is None else Decimal(v) for v in frame[column.name]]
    return frame


def history(engine: Engine, day: date, days: int = 28) -> dict[str, pd.DataFrame]:
    """The feature, model and release rollups of the ``days`` before ``day`` (anomaly
    baselines, and the releases their changes started with)."""
    first, last = day - timedelta(days=days), day - timedelta(days=1)
    return {
        name: read_days(engine, name, first, last)
        for name in ("ai_feature_daily", "ai_model_daily", "ai_release_daily")
    }
