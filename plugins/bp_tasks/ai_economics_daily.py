"""Task bodies of ``ai_economics_daily``, with Airflow's Variables, connections and
hooks; the economics itself is in :mod:`include.economics`.

``compute`` hands the day's tables to the publishing tasks as Parquet files in object
storage (:mod:`bp_tasks.storage`: a folder of this run's try, its manifest written last),
never through XCom nor a worker's disk; ``publish_warehouse`` refuses a folder that is
incomplete or another run's, naming what is missing, and publishes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta

from airflow.sdk import Asset, task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import report_outcome, validated
from bp_tasks.economics_settings import LEDGER_CONN, WAREHOUSE_CONN, Settings
from bp_tasks.storage import read_text, try_folder
from include.economics import calendar

log = logging.getLogger("bp.economics")

#: The per-user level: the one table that grows with the ledger, streamed rather than held.
PER_USER = "ai_cost_daily"

#: Updated when a day is published, for whatever schedules on fresh economics. An "x-" scheme
#: is a custom one Airflow leaves as is (no provider lookup while the file is parsed).
ECONOMICS = Asset(name="ai_economics_daily", uri="x-bp-warehouse://economics/ai_economics_daily")


def _fleet_days(settings: Settings, day: date, aws_conn_id: str) -> list:
    """Each fleet's GPU-hours (CloudWatch) and the cost the margin carries for it (the source)."""
    from decimal import Decimal

    from bp_aws.hooks.costs import CostExplorerHook, FleetMetricsHook
    from include.economics import infra_cost

    source = settings.infra_cost_source
    if source == "none":
        log.info("GPU infrastructure cost: source 'none' (Variable infra_cost_source): margin excludes it")
        return []
    metrics = FleetMetricsHook(aws_conn_id=aws_conn_id)
    hours = {f["slug"]: metrics.instance_hours(day, f["stage"], f["slug"]) for f in settings.fleets}
    if source == "cost_explorer":
        by_fleet = CostExplorerHook(aws_conn_id=aws_conn_id).daily_cost_by_tag(day)
    else:
        types = {f["slug"]: f["instance_type"] for f in settings.fleets}
        by_fleet = infra_cost.estimate(hours, types, settings.gpu_hourly_prices)
    stages = {f["slug"]: f["stage"] for f in settings.fleets}
    fleets = [
        infra_cost.FleetDay(stages.get(slug, ""), slug, hours.get(slug), by_fleet.get(slug, Decimal(0)), source)
        for slug in sorted(set(hours) | set(by_fleet))
    ]
    log.info(
        "GPU infrastructure cost from %s: %s (total %s USD)",
        source,
        {f.fleet: str(f.cost_usd) for f in fleets} or "no fleet cost",
        infra_cost.total(fleets),
    )
    return fleets


def _dev_node_days(settings: Settings, day: date, aws_conn_id: str) -> list:
    """Each dev node's hours running on ``day`` and their price, from the lifecycle events
    every ``gpu_dev_node`` run leaves in the logs bucket (``audit/devnodes/``)."""
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.devnodes import usage
    from include.naming import platform
    from include.naming.dev_node import DevNode

    if settings.infra_cost_source == "none":
        return []
    s3 = OwnBucketsS3Hook(aws_conn_id=aws_conn_id)
    bucket = platform.logs_bucket(s3.account_id)
    prefixes = [DevNode.lifecycle_stage_prefix(stage) for stage in platform.STAGES]
    listing = [item for prefix in prefixes for item in s3.iter_file_metadata(prefix, bucket)]
    events = []
    for key in usage.events_for_day(listing, day):
        events += [json.loads(line) for line in s3.read_key(key, bucket).splitlines() if line.strip()]
    days = usage.dev_node_days(events, day, datetime.now(UTC), settings.gpu_hourly_prices)
    log.info(
        "Dev nodes on %s: %s (total %s USD; %d of %d lifecycle events read)",
        day,
        {f"{d.stage}/{d.name} ({d.owner})": f"{d.node_hours:.2f} h" for d in days} or "none ran",
        usage.total(days),
        len(events),
        len(listing),
    )
    return days


def load_tables(folder, names: Iterable[str]) -> dict:
    """Some of the folder's small tables, whole (never the per-user level: see :func:`chunks_of`)."""
    import pyarrow.parquet as pq

    tables = {}
    for name in names:
        with (folder / "tables" / f"{name}.parquet").open("rb") as handle:
            tables[name] = pq.read_table(handle).to_pandas()
    return tables


def chunks_of(folder, name: str) -> Iterator:
    """One of the folder's tables, a bounded chunk at a time."""
    from include.economics import exports

    with (folder / "tables" / f"{name}.parquet").open("rb") as handle:
        yield from exports.parquet_chunks(handle)


def _folder(computed: dict):
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(computed["location"])


@task
def resolve_day(params: dict | None = None, logical_date=None, dag_run=None, dag=None) -> date:
    """Validate the request before any connection is opened."""
    day = validated(
        lambda p: calendar.day_to_compute(p["day"], logical_date),
        params,
        "Nothing was computed.",
        dag_run=dag_run,
        dag=dag,
    )
    if params.get("reason"):
        log.info("Computing %s again: %s", day, params["reason"])
    return day  # a date in XCom (Airflow's serde): compute gets the day itself


@task(multiple_outputs=False)
def compute(day: date, params: dict | None = None, ti=None) -> dict:
    """Aggregate, price, gate; write the tables to the run folder; fail, publishing
    nothing, when the gate fails."""
    from bp_data.engines import engine_for
    from include.economics import daily, exports
    from include.economics.day_files import MANIFEST, manifest
    from include.economics.prices import PriceBook

    settings = Settings.load()
    book = PriceBook.from_text(read_text(settings.price_catalogue), settings.price_catalogue)
    log.info("Prices from %s; ledger %s, warehouse %s", settings.price_catalogue, LEDGER_CONN, WAREHOUSE_CONN)
    folder = try_folder("ai_economics_daily", day.isoformat(), ti.run_id, ti.try_number)
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    # the per-user level goes to its Parquet file chunk by chunk as it streams: memory is
    # set by the chunk, not by the day
    with (folder / "tables" / f"{PER_USER}.parquet").open("wb") as handle:
        per_user = exports.ParquetChunks(PER_USER, handle)
        try:
            result = daily.compute_day(
                engine_for(LEDGER_CONN),
                engine_for(WAREHOUSE_CONN),
                book,
                day,
                fleets=_fleet_days(settings, day, params["aws_conn_id"]),
                dev_nodes=_dev_node_days(settings, day, params["aws_conn_id"]),
                reconcile_threshold_pct=settings.reconcile_threshold_pct,
                cost_rows=per_user.write,
            )
        finally:
            per_user.close()
    (folder / "gx_validation.json").write_text(result.gate.to_json())
    log.info("Data-quality gate for %s:\n%s", day, result.gate.table())
    if not result.gate.passed:
        raise AirflowFailException(
            f"{result.gate.paragraph()} Nothing was published; the validation result is in {folder}/gx_validation.json."
        )
    for name, frame in result.tables.items():
        (folder / "tables" / f"{name}.parquet").write_bytes(exports.parquet_bytes(name, frame))
    rows = {PER_USER: per_user.rows} | {name: len(frame) for name, frame in result.tables.items()}
    # written last: its presence says every table above is complete
    (folder / MANIFEST).write_text(json.dumps(manifest(ti.run_id, ti.try_number, day.isoformat(), rows)))
    rec = result.reconciliation
    summary = {
        **result.summary(),
        "location": str(folder),
        "tables": rows,
        "gate_warnings": [
            f"{w.name}: {w.failed_rows} row(s), e.g. {', '.join(w.examples)}" for w in result.gate.warnings
        ],
        "anomalies": [a.__dict__ | {"day": a.day.isoformat()} for a in result.anomalies],
        "reconciliation": {
            "cost_usd": str(rec.cost_usd),
            "estimated_usd": str(rec.estimated_usd),
            "drift_pct": rec.drift_pct,
            "warning": rec.warning,
            "worst_models": [[m, str(c), str(e), d] for m, c, e, d in rec.worst_models],
        },
        "payments": result.revenue.payments(),
        "renewals_at_risk_usd": str(result.revenue.renewals_at_risk_usd),
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log.info("Computed %s: %s", day, json.dumps(result.summary(), default=str))
    report_outcome(
        f"{day}: {len(result.anomalies)} anomaly(ies), gate passed with {len(result.gate.warnings)} warning(s); "
        f"tables in {folder}/tables/ ({', '.join(sorted(rows))})"
    )
    return summary


@task(outlets=[ECONOMICS], multiple_outputs=False)
def publish_warehouse(computed: dict, ti=None) -> dict:
    """Replace the day in the warehouse, only with this run's complete set of tables."""
    from bp_data.engines import engine_for
    from include.economics import warehouse
    from include.economics.day_files import MANIFEST, problems

    folder = _folder(computed)
    marker = folder / MANIFEST
    found = json.loads(marker.read_text()) if marker.exists() else None
    present = {path.stem for path in (folder / "tables").iterdir()} if (folder / "tables").exists() else set()
    issues = problems(found, run_id=ti.run_id, day=computed["day"], present=present)
    if issues:
        raise AirflowFailException(
            f"Refused to publish {computed['day']} from {folder}: {'; '.join(issues)}. Nothing was published; "
            "clear compute to recompute the day."
        )
    day = date.fromisoformat(computed["day"])
    written = warehouse.publish(
        engine_for(WAREHOUSE_CONN), day, {name: chunks_of(folder, name) for name in warehouse.TABLES}
    )
    log.info("Replaced %s in the warehouse (%s) from %s: %s", day, WAREHOUSE_CONN, folder, written)
    return written


@task
def export_s3(computed: dict, params: dict | None = None) -> list[str]:
    settings = Settings.load()
    if not settings.s3_uri:
        log.info("Variable economics_s3_uri is not set: no Parquet export to S3")
        return []
    from bp_aws.hooks.s3 import OwnBucketsS3Hook
    from include.economics import exports

    day, folder = date.fromisoformat(computed["day"]), _folder(computed)
    bucket, _, prefix = settings.s3_uri.removeprefix("s3://").partition("/")
    hook = OwnBucketsS3Hook(aws_conn_id=params["aws_conn_id"])
    keys = []
    for name in sorted(computed["tables"]):
        key = exports.parquet_key(prefix, name, day)
        hook.load_bytes((folder / "tables" / f"{name}.parquet").read_bytes(), key=key, bucket_name=bucket, replace=True)
        keys.append(f"s3://{bucket}/{key}")
    report_outcome(f"Exported {len(keys)} Parquet file(s) under s3://{bucket}/{prefix}")
    return keys


@task
def export_influx(computed: dict) -> str:
    from bp_data.influx import write_points
    from include.economics import exports

    settings = Settings.load()
    day, folder = date.fromisoformat(computed["day"]), _folder(computed)
    tables = load_tables(folder, exports.INFLUX_TABLES)
    points = exports.influx_points(day, tables, computed["payments"])
    if write_points(points, bucket=settings.influx_bucket):
        report_outcome(f"Wrote {len(points)} point(s) to InfluxDB bucket {settings.influx_bucket}, stamped {day}")
        return f"influxdb:{settings.influx_bucket}"
    path = folder / "economics.lp"
    path.write_text(exports.line_protocol(points))
    report_outcome(
        f"No InfluxDB connection (influxdb_default): wrote {len(points)} point(s) as line protocol to {path}",
        "Set the connection influxdb_default to write them to InfluxDB (README: Dashboards and alerts as code)",
    )
    return str(path)


@task
def send_alerts(computed: dict, params: dict | None = None, dag_run=None) -> int:
    """The day's alerts; one already sent for this day with the same value is not sent again."""
    from bp_aws.notifiers.ops_alert import run_link
    from bp_data.engines import engine_for
    from bp_tasks.economics_settings import send_once
    from include.economics import warehouse
    from include.economics.day_alerts import alerts_for
    from include.economics.margin import ALL_PLANS
    from include.observability.ownership import owner_of

    settings = Settings.load()
    day = date.fromisoformat(computed["day"])
    margin_rows = load_tables(_folder(computed), ["ai_margin_daily"])["ai_margin_daily"].to_dict("records")
    week = warehouse.read_days(
        engine_for(WAREHOUSE_CONN), "ai_margin_daily", day - timedelta(days=7), day - timedelta(days=1)
    )
    revenue = {row["day"]: row["revenue_usd"] for row in week.to_dict("records") if row["plan"] == ALL_PLANS}
    found = alerts_for(computed, margin_rows, settings.margin_floor_pct, revenue)
    link = run_link({"dag_run": dag_run})
    sent = send_once(day, found, stage=settings.alert_stage, aws_conn_id=params["aws_conn_id"], link=link)
    said = [
        f"{alert.subject}"
        + (f", release {alert.dimensions['release']}" if "release" in alert.dimensions else "")
        + f" (owner {owner_of(alert.dimensions).name})"
        for alert in found
    ]
    report_outcome(f"{len(found)} alert(s) for {day}: {sent} sent, {len(found) - sent} not sent now", *said)
    return sent
