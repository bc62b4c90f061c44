"""GPU infrastructure cost per fleet per day, from one of three sources (the Airflow
Variable ``infra_cost_source``):

* ``cost_explorer``: AWS Cost Explorer's UnblendedCost for the day, grouped by the
  fleet cost-allocation tag (``fleet``, set on every fleet stack's resources);
* ``estimate``: instance-hours x hourly price - instance-hours are the day's hourly
  averages of the fleet's ``ActiveWorkers`` metric (``ComfyUI/Workers``, the ADR-0005
  contract) summed, the price is the fleet's instance type's from ``gpu_hourly_prices``;
* ``none``: no infrastructure cost (margin is revenue - AI cost).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from include.naming import platform

SOURCES = ("cost_explorer", "estimate", "none")
FLEET_TAG = platform.FLEET_TAG

#: Fallback Spot prices per hour (us-east-1, USD), overridable by the Variable gpu_hourly_prices.
DEFAULT_HOURLY_PRICES: dict[str, Decimal] = {
    "g4dn.xlarge": Decimal("0.2256"),
    "g4dn.2xlarge": Decimal("0.3380"),
    "g5.xlarge": Decimal("0.4024"),
    "g5.2xlarge": Decimal("0.4850"),
    "g6.xlarge": Decimal("0.3616"),
}


@dataclass(frozen=True)
class FleetDay:
    """One fleet's day: what the margin carries for it, and the instance-hours behind it."""

    stage: str
    fleet: str
    gpu_hours: float | None
    cost_usd: Decimal
    cost_source: str


def total(fleets: Sequence[FleetDay]) -> Decimal:
    return sum((f.cost_usd for f in fleets), Decimal(0))


def fleet_table(day: date, fleets: Sequence[FleetDay]) -> pd.DataFrame:
    """The ``ai_fleet_daily`` rows."""
    return pd.DataFrame(
        [
            {
                "day": day,
                "stage": f.stage,
                "fleet": f.fleet,
                "gpu_hours": None if f.gpu_hours is None else round(f.gpu_hours, 6),
                "cost_usd": f.cost_usd,
                "cost_source": f.cost_source,
            }
            for f in fleets
        ],
        columns=["day", "stage", "fleet", "gpu_hours", "cost_usd", "cost_source"],
    )


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise ValueError(f"infra_cost_source must be one of {', '.join(SOURCES)}, not {source!r}")
    return source


def cost_explorer_request(day: date, tag_key: str = FLEET_TAG) -> dict[str, Any]:
    """GetCostAndUsage arguments for one day's cost per fleet tag value."""
    return {
        "TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "TAG", "Key": tag_key}],
    }


def parse_cost_explorer(pages: Iterable[Mapping[str, Any]], tag_key: str = FLEET_TAG) -> dict[str, Decimal]:
    """fleet -> cost. Group keys are ``<tag>$<value>``; untagged cost (``<tag>$``) is not a fleet's."""
    costs: dict[str, Decimal] = {}
    for page in pages:
        for result in page.get("ResultsByTime", []):
            for group in result.get("Groups", []):
                key = group["Keys"][0]
                fleet = key.split("$", 1)[1] if key.startswith(f"{tag_key}$") else ""
                if not fleet:
                    continue
                amount = Decimal(group["Metrics"]["UnblendedCost"]["Amount"])
                costs[fleet] = costs.get(fleet, Decimal(0)) + amount
    return costs


def estimate(
    instance_hours: Mapping[str, float], instance_types: Mapping[str, str], prices: Mapping[str, Decimal]
) -> dict[str, Decimal]:
    """fleet -> instance-hours x the hourly price of its instance type."""
    costs = {}
    for fleet, hours in instance_hours.items():
        instance_type = instance_types.get(fleet)
        if instance_type not in prices:
            raise ValueError(
                f"no hourly price for {instance_type!r} (fleet {fleet}); set the Variable gpu_hourly_prices"
            )
        costs[fleet] = Decimal(str(round(hours, 6))) * prices[instance_type]
    return costs
