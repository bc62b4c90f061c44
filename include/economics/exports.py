"""The day's tables in the two export formats: InfluxDB points (the TIG plane) and
Parquet files (the data lake). Both are keyed by the day, so re-running overwrites.

InfluxDB: one measurement per table, points stamped at the day's 00:00 UTC, so a
re-run writes the same series and timestamps and replaces the values. The per-user
``ai_cost_daily`` is left out on purpose: a user id as a tag is the unbounded
cardinality seed 000's risk register warns about; dashboards read feature, model, plan,
fleet and day totals. ``ai_quality_daily`` goes as one point per suite and severity
(its expectation names carry the day's totals: free text), and the day's failed payments
as one point per plan. Every point's tags pass :func:`include.influx_tags.check_tags`.

Parquet: ``<prefix><table>/day=YYYY-MM-DD/part-0.parquet``, money as decimal128(18, 6).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from influxdb_client import Point, WritePrecision

from include.economics import warehouse
from include.influx_tags import check_tags

#: table -> (measurement, tag columns). ai_cost_daily is deliberately absent (cardinality).
INFLUX_MEASUREMENTS = {
    "ai_usage_daily": ("ai_usage", ()),
    "ai_feature_daily": ("ai_feature", ("feature_name",)),
    "ai_model_daily": ("ai_model", ("model_name",)),
    "ai_plan_daily": ("ai_plan", ("plan",)),
    "ai_margin_daily": ("ai_margin", ("plan",)),
    "ai_conversion_daily": ("ai_conversion", ("plan",)),
    "ai_anomalies": ("ai_anomaly", ("signal", "dimension", "severity", "release")),
    "ai_fleet_daily": ("ai_fleet", ("stage", "fleet")),
    "ai_devnode_daily": ("ai_devnode", ("stage", "name", "owner")),
}
#: Day summaries that are not a table's rows: measurement -> (tags, fields).
INFLUX_SUMMARIES = {
    "ai_quality": (("suite", "severity"), ("checks", "failed_checks", "failed_rows")),
    "ai_payment": (("plan",), ("failed_payments", "renewals", "failed_renewals")),
}
#: The day's tables :func:`influx_points` reads.
INFLUX_TABLES = (*INFLUX_MEASUREMENTS, "ai_quality_daily")


def day_timestamp(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def day_point(day: date, measurement: str, tags: dict[str, str], fields: dict) -> Point:
    check_tags(measurement, tags)
    point = Point(measurement).time(day_timestamp(day), WritePrecision.S)
    for tag, value in tags.items():
        point = point.tag(tag, value)
    for column, value in fields.items():
        point = point.field(column, float(value) if isinstance(value, Decimal) else value)
    return point


def _summaries(
    tables: dict[str, pd.DataFrame], payments: dict[str, dict[str, int]]
) -> Iterator[tuple[str, dict, dict]]:
    quality = tables.get("ai_quality_daily")
    if quality is not None and not quality.empty:
        for (suite, severity), checks in quality.groupby(["suite", "severity"]):
            failed = checks[~checks["passed"].astype(bool)]
            counts = {
                "checks": len(checks),
                "failed_checks": len(failed),
                "failed_rows": int(failed["failed_rows"].sum()),
            }
            yield "ai_quality", {"suite": str(suite), "severity": str(severity)}, counts
    for plan, kinds in sorted(payments.items()):
        yield "ai_payment", {"plan": str(plan)}, {name: int(kinds[name]) for name in INFLUX_SUMMARIES["ai_payment"][1]}


def influx_points(
    day: date, tables: dict[str, pd.DataFrame], payments: dict[str, dict[str, int]] | None = None
) -> list[Point]:
    """The day's points: the tables' rows and the summaries (``payments``: plan -> failed
    payments, renewals and failed renewals, :meth:`margin.Revenue.payments`)."""
    points = []
    for name, (measurement, tags) in INFLUX_MEASUREMENTS.items():
        frame = tables.get(name)
        if frame is None or frame.empty:
            continue
        for row in warehouse.records(warehouse.TABLES[name], frame):
            fields = {
                column: value
                for column, value in row.items()
                if column not in tags and column != "day" and value is not None and not isinstance(value, str)
            }
            # a tag without a value (an anomaly no release started) is left off the point
            points.append(day_point(day, measurement, {t: str(row[t]) for t in tags if row[t] is not None}, fields))
    for measurement, tags, fields in _summaries(tables, payments or {}):
        points.append(day_point(day, measurement, tags, fields))
    return points


def line_protocol(points: list[Point]) -> str:
    return "\n".join(point.to_line_protocol() for point in points) + "\n"


def _arrow_type(column) -> pa.DataType:
    kind = column.type
    if isinstance(kind, warehouse.sa.Numeric) and not isinstance(kind, warehouse.sa.Float):
        return pa.decimal128(kind.precision, kind.scale)
    if isinstance(kind, warehouse.sa.Boolean):
        return pa.bool_()
    if isinstance(kind, warehouse.sa.Date):
        return pa.date32()
    if isinstance(kind, warehouse.sa.BigInteger | warehouse.sa.Integer):
        return pa.int64()
    if isinstance(kind, warehouse.sa.Float):
        return pa.float64()
    return pa.string()


def arrow_table(name: str, frame: pd.DataFrame) -> pa.Table:
    """One table's rows with the warehouse's column types (money to the micro-dollar)."""
    table = warehouse.TABLES[name]
    warehouse.columns_of(table, frame)
    arrays = []
    for column in table.columns:
        values = warehouse.python_values(frame[column.name])
        if isinstance(column.type, warehouse.sa.Numeric) and not isinstance(column.type, warehouse.sa.Float):
            step = Decimal(1).scaleb(-column.type.scale)
            values = [None if value is None else Decimal(value).quantize(step) for value in values]
        arrays.append(pa.array(values, type=_arrow_type(column)))
    return pa.Table.from_arrays(arrays, schema=schema_of(name))


def schema_of(name: str) -> pa.Schema:
    return pa.schema([pa.field(c.name, _arrow_type(c)) for c in warehouse.TABLES[name].columns])


def parquet_bytes(name: str, frame: pd.DataFrame) -> bytes:
    """One table's rows as Parquet, with the warehouse's column types."""
    buffer = io.BytesIO()
    pq.write_table(arrow_table(name, frame), buffer)
    return buffer.getvalue()


class ParquetChunks:
    """A table written to an open binary file one chunk (a row group) at a time, so the
    per-user level never has to be held whole; :attr:`rows` counts what was written."""

    def __init__(self, name: str, handle) -> None:
        self.name = name
        self.rows = 0
        self._writer = pq.ParquetWriter(handle, schema_of(name))

    def write(self, frame: pd.DataFrame) -> None:
        self._writer.write_table(arrow_table(self.name, frame))
        self.rows += len(frame)

    def close(self) -> None:
        self._writer.close()


def parquet_chunks(handle, batch_rows: int = 50_000) -> Iterator[pd.DataFrame]:
    """A Parquet file's rows as frames of at most ``batch_rows``."""
    for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows):
        yield batch.to_pandas()


def parquet_key(prefix: str, name: str, day: date) -> str:
    return f"{prefix.rstrip('/')}/{name}/day={day.isoformat()}/part-0.parquet".lstrip("/")
