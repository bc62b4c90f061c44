"""The economics part of the local stack: a month of synthetic ledger, the warehouse as
a month of earlier daily runs left it, the fleet metrics the cost estimate reads, and
the Airflow connections and Variables that point ``ai_economics_daily`` at them.

The warehouse history (the 28 days before the demo's last day) is computed, gated and
published by the same function the DAG's tasks call, day after day, so the anomaly
detector has a baseline and the weekly review pack has full weeks; the last day itself
is computed by a real ``ai_economics_daily`` run.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from devstack import synthetic
from gpu_worker.agent.publisher import put_batches
from include.alerts import DEFAULT_REPORT_TOPIC
from include.devnodes import usage
from include.economics import daily, infra_cost, warehouse
from include.economics.prices import PriceBook
from include.naming.fleet import Fleet
from include.observability import ownership

FLEET = {"stage": "staging", "slug": "gpu-default", "instance_type": "g4dn.xlarge"}


@dataclass(frozen=True)
class EconomicsDemo:
    """Where the demo's economics data lives: SQLite files on one machine, PostgreSQL
    databases (and the catalogue in the emulator's S3) when workers are separate hosts."""

    folder: Path
    window: synthetic.Window
    counts: dict[str, int]
    ledger_url: str
    warehouse_url: str
    #: the ``ai_price_catalogue`` Variable: a local path, or a URI every worker can read
    catalogue: str

    @property
    def catalogue_path(self) -> Path:
        return self.folder / "price_catalogue.csv"

    def ledger_engine(self) -> sa.engine.Engine:
        return sa.create_engine(self.ledger_url)

    def warehouse_engine(self) -> sa.engine.Engine:
        return sa.create_engine(self.warehouse_url)

    def airflow_env(self, logs_bucket: str) -> dict[str, str]:
        return {
            "AIRFLOW_CONN_AI_LEDGER": _connection(self.ledger_url),
            "AIRFLOW_VAR_ECONOMICS_S3_URI": f"s3://{logs_bucket}/economics/",
            "AIRFLOW_CONN_AI_WAREHOUSE": _connection(self.warehouse_url),
            "AIRFLOW_VAR_AI_PRICE_CATALOGUE": self.catalogue,
            "AIRFLOW_VAR_INFRA_COST_SOURCE": "estimate",
            "AIRFLOW_VAR_ECONOMICS_FLEETS": json.dumps([FLEET]),
            "AIRFLOW_VAR_ECONOMICS_ALERT_STAGE": "staging",
            # scheduled history starts tomorrow: unpausing the DAG in the demo creates no catchup runs
            "BP_ECONOMICS_START_DATE": (datetime.now(UTC).date() + timedelta(days=1)).isoformat(),
        }


def _connection(url: str) -> str:
    """An Airflow connection (JSON form) for a SQLAlchemy URL of SQLite or PostgreSQL."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return json.dumps({"conn_type": "sqlite", "host": parsed.database})
    return json.dumps(
        {
            "conn_type": "postgres",
            "host": parsed.host,
            "port": parsed.port,
            "login": parsed.username,
            "password": parsed.password,
            "schema": parsed.database,
        }
    )


def fleet_hours(day: date) -> list[dict[str, float]]:
    """The fleet's ADR-0005 metrics for each hour of ``day``: a busy afternoon, idle nights,
    now and then a Spot reclamation. Deterministic per day."""
    rng = random.Random(day.toordinal())  # noqa: S311 - demo data, not a secret
    hours = []
    for hour in range(24):
        workers = 2 if 13 <= hour <= 20 else (1 if 8 <= hour <= 22 else 0)
        if workers and day.weekday() < 5 and rng.random() < 0.15:
            workers += 1  # a weekday burst
        queue = rng.randint(0, 6) * workers
        hours.append(
            {
                "ActiveWorkers": workers,
                "QueueDepth": queue,
                "ErrorRate": round(rng.uniform(0.2, 2.5), 2) if workers else 0.0,
                "SpotInterruptionCount": 1 if workers and rng.random() < 0.04 else 0,
            }
        )
    return hours


def put_fleet_metrics(cloudwatch: Any, day: date) -> None:
    """:func:`fleet_hours` of ``day`` into CloudWatch, at half past each hour (history,
    through the agents' own batching: :mod:`devstack.fleet_metrics`)."""
    put_batches(
        cloudwatch,
        [
            {
                "MetricName": name,
                "Dimensions": Fleet(FLEET["stage"], FLEET["slug"]).metric_dimensions,
                "Timestamp": datetime.combine(day, time(hour, 30), tzinfo=UTC),
                "Value": value,
            }
            for hour, metrics in enumerate(fleet_hours(day))
            for name, value in metrics.items()
        ],
    )


def fleet_days(day: date) -> list[infra_cost.FleetDay]:
    """What ``ai_economics_daily`` with ``infra_cost_source=estimate`` finds for the fleet on ``day``."""
    hours = sum(metrics["ActiveWorkers"] for metrics in fleet_hours(day))
    cost = infra_cost.estimate(
        {FLEET["slug"]: hours}, {FLEET["slug"]: FLEET["instance_type"]}, infra_cost.DEFAULT_HOURLY_PRICES
    )
    return [infra_cost.FleetDay(FLEET["stage"], FLEET["slug"], float(hours), cost[FLEET["slug"]], "estimate")]


#: The history's dev node: an engineer's g5.xlarge, started each weekday morning and
#: stopped in the evening (stopped over the weekend). Not alice-sdxl: that one is created by
#: the demo and the README, and must be new when they do.
DEV_NODE = {"stage": "staging", "name": "bob-flux", "owner": "bob", "instance_type": "g5.xlarge"}


def lifecycle_events(node: dict[str, str], day: date, stretches: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """The events of ``node`` started at each stretch's first hour of ``day`` and stopped
    at its second (each action taking two minutes), as ``gpu_dev_node`` leaves them."""
    events = []
    for start, stop in stretches:
        for action, hour, state in (("start", start, "running"), ("stop", stop, "stopped")):
            moment = datetime.combine(day, time(hour), tzinfo=UTC)
            events.append(
                {
                    **node,
                    "action": action,
                    "to_state": state,
                    "started_at": moment.isoformat(),
                    "ended_at": (moment + timedelta(minutes=2)).isoformat(),
                }
            )
    return events


def dev_node_events(day: date) -> list[dict[str, Any]]:
    """What :data:`DEV_NODE` left on ``day``: a weekday's session or two, nothing at weekends."""
    if day.weekday() >= 5:
        return []
    return lifecycle_events(DEV_NODE, day, [(9, 12), (13, 18)] if day.toordinal() % 3 else [(9, 18)])


def dev_node_days(day: date) -> list[usage.DevNodeCost]:
    """What ``ai_economics_daily`` finds for the demo's dev node on ``day``."""
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC)
    return usage.dev_node_days(dev_node_events(day), day, end, infra_cost.DEFAULT_HOURLY_PRICES)


def seed_history(
    ledger_engine: sa.engine.Engine, warehouse_engine: sa.engine.Engine, book: PriceBook, days: list[date]
) -> dict[date, daily.DayResult]:
    """Publish ``days`` in order as the daily runs would have: computed, gated, with
    anomalies; what each day computed, for what is made of it (the dashboards' pictures)."""
    results = {}
    for day in days:
        result = daily.compute_day(
            ledger_engine, warehouse_engine, book, day, fleets=fleet_days(day), dev_nodes=dev_node_days(day)
        )
        if not result.gate.passed:
            raise RuntimeError(f"the synthetic ledger fails the gate on {day}: {result.gate.paragraph()}")
        warehouse.publish(warehouse_engine, day, result.tables)
        results[day] = result
    return results


def prepare(
    folder: Path,
    last_day: date,
    aws_client: Any,
    *,
    ledger_url: str | None = None,
    warehouse_url: str | None = None,
    catalogue_uri: str | None = None,
) -> EconomicsDemo:
    """Generate the ledger, publish the warehouse history, put the fleet metrics. The
    databases default to SQLite files in ``folder``; ``catalogue_uri`` (an
    ``s3://bucket/key``) puts the price catalogue where every worker reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    window = synthetic.Window(last_day)
    catalogue_path = synthetic.write_catalogue(folder / "price_catalogue.csv", window)
    catalogue = str(catalogue_path)
    if catalogue_uri:
        bucket, _, key = catalogue_uri.removeprefix("s3://").partition("/")
        aws_client("s3").put_object(Bucket=bucket, Key=key, Body=catalogue_path.read_bytes())
        catalogue = f"s3://aws_default@{bucket}/{key}"
    demo = EconomicsDemo(
        folder,
        window,
        {},
        ledger_url or f"sqlite:///{folder / 'ledger.db'}",
        warehouse_url or f"sqlite:///{folder / 'warehouse.db'}",
        catalogue,
    )
    book = PriceBook.from_csv(catalogue_path)
    ledger_engine = demo.ledger_engine()
    counts = synthetic.generate(ledger_engine, window, book)
    seed_history(ledger_engine, demo.warehouse_engine(), book, window.dates()[-29:-1])
    for day in window.dates()[-29:]:
        put_fleet_metrics(aws_client("cloudwatch"), day)
    for stage in ("staging", "production"):
        aws_client("sns").create_topic(Name=f"bp-ops-alerts-{stage}")
        for team in ownership.TEAMS.values():  # the owners' topics, pagers included
            for name in team.topics("critical", stage):
                aws_client("sns").create_topic(Name=name)
    aws_client("sns").create_topic(Name=DEFAULT_REPORT_TOPIC)
    return replace(demo, counts=counts)
