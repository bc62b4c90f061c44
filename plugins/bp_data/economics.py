"""What each task of ``ai_economics_daily`` does, with Airflow's Variables, connections
and hooks; the economics itself is in :mod:`include.economics`.

Tasks hand each other the day's tables as Parquet files in the run's output folder
(``<economics_output_dir>/ai_economics_daily/<day>/``), never through XCom. On a
multi-worker deployment point ``economics_output_dir`` at storage every worker mounts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowFailException

from include.alerts import Alert
from include.economics import daily, exports, infra_cost, warehouse
from include.economics.prices import DEFAULT_CATALOGUE, PriceBook
from include.economics.weekly import IsoWeek

log = logging.getLogger("bp.economics")

LEDGER_CONN = "ai_ledger"
WAREHOUSE_CONN = "ai_warehouse"


@dataclass(frozen=True)
class Settings:
    """Every Airflow Variable the DAG reads, with its default (listed in the README)."""

    price_catalogue: str
    infra_cost_source: str
    s3_uri: str
    output_dir: Path
    influx_bucket: str
    margin_floor_pct: Decimal
    reconcile_threshold_pct: float
    alert_stage: str
    gpu_hourly_prices: dict[str, Decimal]
    fleets: list[dict[str, str]]

    @classmethod
    def load(cls) -> Settings:
        home = Path(os.environ.get("AIRFLOW_HOME", "~/airflow")).expanduser()
        prices = json.loads(Variable.get("gpu_hourly_prices", default="{}"))
        fleets = json.loads(
            Variable.get(
                "economics_fleets",
                default='[{"stage": "staging", "slug": "gpu-default", "instance_type": "g4dn.xlarge"}]',
            )
        )
        return cls(
            price_catalogue=Variable.get("ai_price_catalogue", default=str(DEFAULT_CATALOGUE)),
            infra_cost_source=infra_cost.check_source(Variable.get("infra_cost_source", default="none")),
            s3_uri=Variable.get("economics_s3_uri", default=""),
            output_dir=Path(Variable.get("economics_output_dir", default=str(home / "outputs"))),
            influx_bucket=Variable.get("economics_influx_bucket", default="economics"),
            margin_floor_pct=Decimal(Variable.get("margin_floor_pct", default="20")),
            reconcile_threshold_pct=float(Variable.get("reconcile_threshold_pct", default="5")),
            alert_stage=Variable.get("economics_alert_stage", default="production"),
            gpu_hourly_prices={**infra_cost.DEFAULT_HOURLY_PRICES, **{k: Decimal(str(v)) for k, v in prices.items()}},
            fleets=fleets,
        )

    def run_dir(self, day: date) -> Path:
        return self.output_dir / "ai_economics_daily" / day.isoformat()

    def pack_dir(self, week: IsoWeek) -> Path:
        """The weekly review pack's folder of ``week``."""
        return self.output_dir / "weekly_review_pack" / str(week)


def _fleet_days(settings: Settings, day: date, aws_conn_id: str) -> list[infra_cost.FleetDay]:
    """Each fleet's GPU-hours (CloudWatch) and the cost the margin carries for it (the source)."""
    from bp_aws.hooks.costs import CostExplorerHook, FleetMetricsHook

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


def compute(day: date, aws_conn_id: str) -> dict[str, Any]:
    """Compute the day and gate it; write the tables to the run folder; fail if the gate fails."""
    from bp_data.engines import engine_for

    settings = Settings.load()
    book = PriceBook.from_csv(settings.price_catalogue)
    log.info("Prices from %s; ledger %s, warehouse %s", settings.price_catalogue, LEDGER_CONN, WAREHOUSE_CONN)
    result = daily.compute_day(
        engine_for(LEDGER_CONN),
        engine_for(WAREHOUSE_CONN),
        book,
        day,
        fleets=_fleet_days(settings, day, aws_conn_id),
        reconcile_threshold_pct=settings.reconcile_threshold_pct,
    )
    folder = settings.run_dir(day)
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    (folder / "gx_validation.json").write_text(result.gate.to_json())
    log.info("Data-quality gate for %s:\n%s", day, result.gate.table())
    if not result.gate.passed:
        raise AirflowFailException(
            f"{result.gate.paragraph()} Nothing was published; "
            f"the validation result is in {folder / 'gx_validation.json'}."
        )
    for name, frame in result.tables.items():
        (folder / "tables" / f"{name}.parquet").write_bytes(exports.parquet_bytes(name, frame))
    rec = result.reconciliation
    summary = {
        **result.summary(),
        "output_dir": str(folder),
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
        "failed_payments": result.revenue.failed_payments,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    log.info("Computed %s: %s", day, json.dumps(result.summary(), default=str))
    return summary


def load_tables(folder: Path, names: Iterable[str] | None = None) -> dict[str, pd.DataFrame]:
    """The run folder's tables; only ``names`` when given (the per-user table can be large)."""
    wanted = set(warehouse.TABLES if names is None else names)
    return {
        path.stem: pq.read_table(path).to_pandas()
        for path in sorted((folder / "tables").glob("*.parquet"))
        if path.stem in wanted
    }


def publish_warehouse(day: date, folder: Path) -> dict[str, int]:
    from bp_data.engines import engine_for

    written = warehouse.publish(engine_for(WAREHOUSE_CONN), day, load_tables(folder))
    log.info("Replaced %s in the warehouse (%s): %s", day, WAREHOUSE_CONN, written)
    return written


def export_s3(day: date, folder: Path, aws_conn_id: str) -> list[str]:
    settings = Settings.load()
    if not settings.s3_uri:
        log.info("Variable economics_s3_uri is not set: no Parquet export to S3")
        return []
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    bucket, _, prefix = settings.s3_uri.removeprefix("s3://").partition("/")
    hook = S3Hook(aws_conn_id=aws_conn_id)
    keys = []
    for path in sorted((folder / "tables").glob("*.parquet")):
        key = exports.parquet_key(prefix, path.stem, day)
        hook.load_bytes(path.read_bytes(), key=key, bucket_name=bucket, replace=True)
        keys.append(f"s3://{bucket}/{key}")
    log.info("Exported %d Parquet file(s) under s3://%s/%s", len(keys), bucket, prefix)
    return keys


def export_influx(day: date, folder: Path) -> str:
    from bp_data.influx import write_points

    settings = Settings.load()
    tables = load_tables(folder, exports.INFLUX_MEASUREMENTS)
    points = exports.influx_points(day, tables)
    if write_points(points, bucket=settings.influx_bucket):
        log.info("Wrote %d point(s) to InfluxDB bucket %s, stamped %s", len(points), settings.influx_bucket, day)
        return f"influxdb:{settings.influx_bucket}"
    path = folder / "economics.lp"
    path.write_text(exports.line_protocol(day, tables))
    log.info("No InfluxDB connection (influxdb_default): wrote %d point(s) as line protocol to %s", len(points), path)
    return str(path)


def _shown(signal: str, value: float) -> int | float:
    """Tokens are counts; cost is money to the micro-dollar."""
    return round(value) if signal == "tokens" else round(value, 6)


def alerts_for(summary: dict[str, Any], margin_rows: list[dict[str, Any]], floor_pct: Decimal) -> list[Alert]:
    """Every alert the day deserves: anomalies, margin under the floor, cost drift, failed payments."""
    found = [
        Alert(
            severity=a["severity"],
            title=f"{a['signal'].capitalize()} anomaly on {a['dimension']} ({summary['day']})",
            metric=a["signal"],
            value=_shown(a["signal"], a["value"]),
            threshold=_shown(a["signal"], a["baseline"]),
            dimensions=dict([a["dimension"].split(":", 1)]),
            detail=f"robust z = {a['z']} against the same-weekday baseline of the previous 28 days",
        )
        for a in summary["anomalies"]
    ]
    for row in margin_rows:
        pct = row["margin_pct"]
        if pct is not None and Decimal(str(pct)) < floor_pct:
            found.append(
                Alert(
                    severity="critical" if Decimal(str(row["margin_usd"])) < 0 else "warning",
                    title=f"Margin below {floor_pct}% for plan {row['plan']} ({summary['day']})",
                    metric="margin_pct",
                    value=pct,
                    threshold=floor_pct,
                    dimensions={"plan": row["plan"]},
                )
            )
    rec = summary["reconciliation"]
    if rec["warning"]:
        found.append(
            Alert(
                severity="warning",
                title=f"Recomputed AI cost drifts from the app's estimate ({summary['day']})",
                metric="cost_drift_pct",
                value=rec["drift_pct"],
                detail="worst models: "
                + "; ".join(f"{m} cost {c} vs estimated {e}" for m, c, e, _ in rec["worst_models"]),
            )
        )
    for plan, count in summary["failed_payments"].items():
        found.append(
            Alert(
                severity="warning",
                title=f"{count} failed payment(s) on plan {plan} ({summary['day']})",
                metric="failed_payments",
                value=count,
                dimensions={"plan": plan},
            )
        )
    return found


def send_alerts(summary: dict[str, Any], aws_conn_id: str, link: str | None) -> int:
    from bp_aws.notifiers.ops_alert import send_alert

    settings = Settings.load()
    tables = load_tables(Path(summary["output_dir"]), ["ai_margin_daily"])
    margin_rows = tables.get("ai_margin_daily", pd.DataFrame()).to_dict("records")
    found = alerts_for(summary, margin_rows, settings.margin_floor_pct)
    for alert in found:
        send_alert(Alert(**{**alert.__dict__, "link": link}), stage=settings.alert_stage, aws_conn_id=aws_conn_id)
    log.info("%d alert(s) for %s", len(found), summary["day"])
    return len(found)


def resolve_day(requested: str | None, logical_date: Any) -> date:
    """The day to process: the ``day`` param, else the day before the scheduled run."""
    if requested:
        try:
            day = date.fromisoformat(requested)
        except ValueError:
            raise AirflowFailException(f"day {requested!r} is not a YYYY-MM-DD date. Nothing was computed.") from None
    else:
        day = logical_date.date() - timedelta(days=1)
    if day >= datetime.now(UTC).date():
        raise AirflowFailException(
            f"day {day} is not over yet (UTC): only past days can be computed. Nothing was computed."
        )
    return day
