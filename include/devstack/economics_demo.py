"""The economics part of the local stack: a month of synthetic ledger, the warehouse as
a month of earlier daily runs left it, the fleet metrics the cost estimate reads, and
the Airflow connections and Variables that point ``ai_economics_daily`` at them.

The warehouse history (the 28 days before the demo's last day) is written straight
from the same rollup functions the DAG uses, without the gate - the demo's data is
clean by construction - so the anomaly detector has a baseline; the last day itself
is computed, gated and published by a real ``ai_economics_daily`` run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from include.economics import anomalies, margin, rollups, synthetic, warehouse
from include.economics.prices import PriceBook

FLEET = {"stage": "staging", "slug": "gpu-default", "instance_type": "g4dn.xlarge"}


@dataclass(frozen=True)
class EconomicsDemo:
    folder: Path
    window: synthetic.Window
    counts: dict[str, int]

    @property
    def ledger_path(self) -> Path:
        return self.folder / "ledger.db"

    @property
    def warehouse_path(self) -> Path:
        return self.folder / "warehouse.db"

    @property
    def catalogue_path(self) -> Path:
        return self.folder / "price_catalogue.csv"

    @property
    def output_dir(self) -> Path:
        return self.folder / "outputs"

    def run_dir(self, day: date) -> Path:
        return self.output_dir / "ai_economics_daily" / day.isoformat()

    def airflow_env(self, logs_bucket: str) -> dict[str, str]:
        sqlite = lambda path: json.dumps({"conn_type": "sqlite", "host": str(path)})  # noqa: E731
        return {
            "AIRFLOW_CONN_AI_LEDGER": sqlite(self.ledger_path),
            "AIRFLOW_CONN_AI_WAREHOUSE": sqlite(self.warehouse_path),
            "AIRFLOW_VAR_AI_PRICE_CATALOGUE": str(self.catalogue_path),
            "AIRFLOW_VAR_ECONOMICS_S3_URI": f"s3://{logs_bucket}/economics/",
            "AIRFLOW_VAR_ECONOMICS_OUTPUT_DIR": str(self.output_dir),
            "AIRFLOW_VAR_INFRA_COST_SOURCE": "estimate",
            "AIRFLOW_VAR_ECONOMICS_FLEETS": json.dumps([FLEET]),
            "AIRFLOW_VAR_ECONOMICS_ALERT_STAGE": "staging",
            # scheduled history starts tomorrow: unpausing the DAG in the demo creates no catchup runs
            "BP_ECONOMICS_START_DATE": (datetime.now(UTC).date() + timedelta(days=1)).isoformat(),
        }


def seed_history(
    ledger_engine: sa.engine.Engine, warehouse_engine: sa.engine.Engine, book: PriceBook, days: list[date]
) -> None:
    for day in days:
        _, tables = rollups.compute_rollups(ledger_engine, book, day)
        revenue = margin.revenue_by_plan(
            margin.day_revenue_groups(ledger_engine, day), margin.fx_for_day(ledger_engine, day)
        )
        costs = {row["plan"]: row["cost_usd"] for row in tables["ai_plan_daily"].to_dict("records")}
        tables["ai_margin_daily"] = margin.margin_table(day, costs, revenue, Decimal(0))
        tables["ai_anomalies"] = anomalies.anomalies_table([])
        warehouse.publish(warehouse_engine, day, tables)


def put_fleet_metrics(cloudwatch: Any, day: date) -> None:
    """ActiveWorkers hourly for the fleet on ``day``: a busy afternoon, idle nights."""
    dimensions = [{"Name": "FleetSlug", "Value": FLEET["slug"]}, {"Name": "Stage", "Value": FLEET["stage"]}]
    data = [
        {
            "MetricName": "ActiveWorkers",
            "Dimensions": dimensions,
            "Timestamp": datetime.combine(day, time(hour, 30), tzinfo=UTC),
            "Value": 2 if 13 <= hour <= 20 else (1 if 8 <= hour <= 22 else 0),
        }
        for hour in range(24)
    ]
    cloudwatch.put_metric_data(Namespace="ComfyUI/Workers", MetricData=data)


def prepare(folder: Path, last_day: date, aws_client: Any) -> EconomicsDemo:
    folder.mkdir(parents=True, exist_ok=True)
    window = synthetic.Window(last_day)
    demo = EconomicsDemo(folder, window, {})
    book = PriceBook.from_csv(synthetic.write_catalogue(demo.catalogue_path, window))
    ledger_engine = sa.create_engine(f"sqlite:///{demo.ledger_path}")
    counts = synthetic.generate(ledger_engine, window, book)
    warehouse_engine = sa.create_engine(f"sqlite:///{demo.warehouse_path}")
    seed_history(ledger_engine, warehouse_engine, book, window.dates()[-29:-1])
    put_fleet_metrics(aws_client("cloudwatch"), last_day)
    for stage in ("staging", "production"):
        aws_client("sns").create_topic(Name=f"bp-ops-alerts-{stage}")
    return replace(demo, counts=counts)
