"""One day of AI economics, start to finish, without Airflow: the DAG's tasks call these.

:func:`compute_day` reads the ledger (one streamed aggregate, and the gate's one
aggregate pass), runs the data-quality gate and computes every table; nothing is
published. Publishing is separate (:mod:`include.economics.warehouse`,
:mod:`include.economics.exports`) and only happens when the gate passed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
from sqlalchemy.engine import Engine

from include.devnodes import usage
from include.devnodes.usage import DevNodeCost
from include.economics import anomalies, conversion, infra_cost, margin, quality, rollups, warehouse
from include.economics.prices import PriceBook


@dataclass
class DayResult:
    day: date
    tables: dict[str, pd.DataFrame]
    gate: quality.GateResult
    reconciliation: margin.Reconciliation
    revenue: margin.Revenue
    anomalies: list[anomalies.Anomaly] = field(default_factory=list)

    def summary(self) -> dict:
        usage = self.tables["ai_usage_daily"]
        everything = self.tables["ai_margin_daily"]
        total = everything[everything["plan"] == margin.ALL_PLANS]
        return {
            "day": self.day.isoformat(),
            "requests": int(usage["requests"].sum()) if not usage.empty else 0,
            "ai_cost_usd": str(total["ai_cost_usd"].iloc[0]) if not total.empty else "0",
            "revenue_usd": str(total["revenue_usd"].iloc[0]) if not total.empty else "0",
            "margin_usd": str(total["margin_usd"].iloc[0]) if not total.empty else "0",
            "anomalies": len(self.anomalies),
            "gate_passed": self.gate.passed,
            "gate_warnings": len(self.gate.warnings),
            "reconciliation_drift_pct": self.reconciliation.drift_pct,
        }


def _empty(name: str) -> pd.DataFrame:
    return pd.DataFrame(columns=[column.name for column in warehouse.TABLES[name].columns])


def _check_ledger(engine: Engine, book: PriceBook, day: date):
    """The gate's ledger and revenue suites, with the day's revenue and FX rates they read."""
    revenue_groups = margin.day_revenue_groups(engine, day)
    fx = margin.fx_for_day(engine, day)
    return quality.check_ledger(engine, book, day, revenue_groups, set(fx)), revenue_groups, fx


def compute_day(
    ledger_engine: Engine,
    warehouse_engine: Engine,
    book: PriceBook,
    day: date,
    *,
    fleets: Sequence[infra_cost.FleetDay] = (),
    dev_nodes: Sequence[DevNodeCost] = (),
    rules: anomalies.Rules | None = None,
    reconcile_threshold_pct: float = 5.0,
    cost_rows: Callable[[pd.DataFrame], None] | None = None,
) -> DayResult:
    """The day's tables, gate, reconciliation and anomalies.

    ``cost_rows`` takes the per-user level (``ai_cost_daily``) chunk by chunk as it
    streams (the DAG writes it to a Parquet file): it is then not in ``tables``, and
    memory stays bounded however big the day. Without it the level is in ``tables``
    like the others (small days, tests).
    """
    kept: list[pd.DataFrame] = []
    if ledger_engine.dialect.name == "sqlite":  # in this process: nothing to overlap
        verdict, revenue_groups, fx = _check_ledger(ledger_engine, book, day)
        day_rollups = rollups.stream_rollups(ledger_engine, book, day, cost_rows or kept.append)
    else:
        # the ledger half of the gate (its own pass over the day, on the database's other
        # core) runs while the database builds the per-user level
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gate-ledger") as pool:
            checking = pool.submit(_check_ledger, ledger_engine, book, day)
            day_rollups = rollups.stream_rollups(ledger_engine, book, day, cost_rows or kept.append)
            verdict, revenue_groups, fx = checking.result()
    tables = day_rollups.tables()
    if cost_rows is None and tables:
        tables["ai_cost_daily"] = rollups.in_key_order(kept)
    per_user = quality.RollupTotals(
        day_rollups.totals, day_rollups.unpriced_rows, tuple(sorted(day_rollups.unpriced_models))
    )
    gate = quality.check_rollups(verdict, per_user)
    revenue = margin.revenue_by_plan(revenue_groups, fx)
    plan_daily = tables.get("ai_plan_daily", _empty("ai_plan_daily"))
    ai_cost_by_plan = {
        row["plan"]: row["cost_usd"] for row in plan_daily.to_dict("records") if row["cost_usd"] is not None
    }
    gpu_cost = infra_cost.total(fleets) + usage.total(dev_nodes)
    tables["ai_margin_daily"] = margin.margin_table(day, ai_cost_by_plan, revenue, gpu_cost)
    tables["ai_conversion_daily"] = conversion.day_conversions(ledger_engine, day)
    tables["ai_fleet_daily"] = infra_cost.fleet_table(day, fleets)
    tables["ai_devnode_daily"] = usage.dev_node_table(day, dev_nodes)
    tables["ai_quality_daily"] = gate.table_rows(day)
    found = (
        anomalies.detect(day, tables, warehouse.history(warehouse_engine, day), rules or anomalies.Rules())
        if gate.passed
        else []
    )
    tables["ai_anomalies"] = anomalies.anomalies_table(found)
    for name in warehouse.TABLES:
        if not (name == "ai_cost_daily" and cost_rows is not None):
            tables.setdefault(name, _empty(name))
    return DayResult(
        day=day,
        tables=tables,
        gate=gate,
        reconciliation=margin.reconcile(day_rollups.reconciliation_rows(), threshold_pct=reconcile_threshold_pct),
        revenue=revenue,
        anomalies=found,
    )
