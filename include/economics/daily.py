"""One day of AI economics, start to finish, without Airflow: the DAG's tasks call these.

:func:`compute_day` reads the ledger (pushed-down aggregates only), runs the
data-quality gate and computes every table; nothing is written. Publishing is
separate (:mod:`include.economics.warehouse`, :mod:`include.economics.exports`) and only
happens when the gate passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import pandas as pd
from sqlalchemy.engine import Engine

from include.devnodes import usage
from include.devnodes.usage import DevNodeCost
from include.economics import anomalies, infra_cost, margin, quality, rollups, warehouse
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
) -> DayResult:
    groups, tables = rollups.compute_rollups(ledger_engine, book, day)
    revenue_groups = margin.day_revenue_groups(ledger_engine, day)
    fx = margin.fx_for_day(ledger_engine, day)
    gate = quality.run_gate(
        ledger_engine, book, day, tables.get("ai_cost_daily", _empty("ai_cost_daily")), revenue_groups, set(fx)
    )
    revenue = margin.revenue_by_plan(revenue_groups, fx)
    plan_daily = tables.get("ai_plan_daily", _empty("ai_plan_daily"))
    ai_cost_by_plan = {
        row["plan"]: row["cost_usd"] for row in plan_daily.to_dict("records") if row["cost_usd"] is not None
    }
    gpu_cost = infra_cost.total(fleets) + usage.total(dev_nodes)
    tables["ai_margin_daily"] = margin.margin_table(day, ai_cost_by_plan, revenue, gpu_cost)
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
        tables.setdefault(name, _empty(name))
    return DayResult(
        day=day,
        tables=tables,
        gate=gate,
        reconciliation=margin.reconcile(groups, threshold_pct=reconcile_threshold_pct),
        revenue=revenue,
        anomalies=found,
    )
