"""A month of the platform's AWS bill for the local stack: what Cost Explorer, Cost
Anomaly Detection and AWS Budgets answer ``aws_spend_daily`` with (planted into the
emulator: :mod:`devstack.emulator.costs`).

Each stage's day is the same handful of usage types with a little weekday noise; on the
last day production's NAT Gateway data processing is ten times its usual (GPU workers
calling the public ALB through NAT, seed 003's first hotspot), and AWS's own anomaly
detector reports it too: the DAG must find it once, alert once, and name the usage type.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import requests

from include.economics.aws_spend import SpendLine
from include.economics.cost_hotspots import EC2_COMPUTE

DAYS = 29
#: (service, usage type, unit, USD a day in production, in staging, fleet tag)
USAGE = (
    ("EC2 - Other", "USE1-NatGateway-Bytes", "GB", 4.05, 0.81, ""),
    ("EC2 - Other", "USE1-NatGateway-Hours", "Hrs", 1.08, 1.08, ""),
    ("AmazonCloudWatch", "USE1-DataProcessing-Bytes", "GB", 2.25, 0.55, ""),
    ("Amazon Simple Storage Service", "USE1-DataTransfer-Out-Bytes", "GB", 6.30, 0.40, ""),
    ("Amazon CloudFront", "US-DataTransfer-Out-Bytes", "GB", 11.90, 0.20, ""),
    (EC2_COMPUTE, "USE1-SpotUsage:g4dn.xlarge", "Hrs", 21.66, 5.41, "gpu-default"),
    ("Amazon Relational Database Service", "USE1-InstanceUsage:db.r6g.large", "Hrs", 6.24, 2.08, ""),
)
#: What production's NAT data processing costs on the last day: ten times its usual.
NAT_SPIKE_USD = 40.50
ANOMALY_ID = "demo-nat-spike"
#: Variable aws_daily_budgets: what each stage's day may cost (the usual day fits).
DAILY_BUDGETS = {"production": {"gpu_instances": 30}, "staging": {"total": 25}}
BUDGET = {"BudgetName": "bp-production-monthly", "limit": "2500", "stage": "production"}


def lines(last_day: date) -> list[dict[str, Any]]:
    """Cost lines of both stages over the ``DAYS`` days up to ``last_day``."""
    planted = []
    for back in range(DAYS - 1, -1, -1):
        day = last_day - timedelta(days=back)
        noise = (0.97, 1.0, 1.03, 0.99, 1.02, 0.94, 0.95)[day.weekday()]
        for service, usage_type, unit, production, staging, fleet in USAGE:
            for stage, usual in (("production", production), ("staging", staging)):
                cost = usual * noise
                if back == 0 and stage == "production" and usage_type.endswith("NatGateway-Bytes"):
                    cost = NAT_SPIKE_USD
                tags = {"stage": stage, **({"fleet": fleet} if fleet else {})}
                quantity = cost / 0.045 if unit == "GB" else 24.0
                planted.append({"day": day.isoformat(), "service": service, "usage_type": usage_type, "tags": tags,
                                "cost": round(cost, 4), "quantity": round(quantity, 3), "unit": unit})  # fmt: skip
    return planted


def spend_lines(last_day: date) -> list[SpendLine]:
    """The same month as Cost Explorer's lines (the dashboards' pictures draw them)."""
    return [
        SpendLine(date.fromisoformat(x["day"]), x["tags"]["stage"], x["service"], x["usage_type"],
                  Decimal(str(x["cost"])), x["quantity"], x["unit"], x["tags"].get("fleet", ""))
        for x in lines(last_day)
    ]  # fmt: skip


def anomalies(last_day: date) -> list[dict[str, Any]]:
    """AWS Cost Anomaly Detection's view of the same day: the NAT spike."""
    usual = next(row[3] for row in USAGE if row[1].endswith("NatGateway-Bytes"))
    return [
        {
            "AnomalyId": ANOMALY_ID,
            "AnomalyStartDate": last_day.isoformat(),
            "AnomalyEndDate": last_day.isoformat(),
            "DimensionValue": "EC2 - Other",
            "MonitorArn": "arn:aws:ce::123456789012:anomalymonitor/bp-services",
            "RootCauses": [{"Service": "EC2 - Other", "Region": "us-east-1", "UsageType": "USE1-NatGateway-Bytes"}],
            "AnomalyScore": {"MaxScore": 0.93, "CurrentScore": 0.93},
            "Impact": {
                "MaxImpact": round(NAT_SPIKE_USD - usual, 2),
                "TotalImpact": round(NAT_SPIKE_USD - usual, 2),
                "TotalActualSpend": NAT_SPIKE_USD,
                "TotalExpectedSpend": usual,
            },
            "Feedback": "NO",
        }
    ]


def plant(moto_url: str, aws_client: Any, last_day: date) -> str:
    """Plant the month into the emulator at ``moto_url``; create production's monthly budget."""
    bill = {"lines": lines(last_day), "anomalies": anomalies(last_day)}
    requests.post(f"{moto_url}/moto-api/bp/costs", json=bill, timeout=30).raise_for_status()
    aws_client("budgets").create_budget(
        AccountId=aws_client("sts").get_caller_identity()["Account"],
        Budget={
            "BudgetName": BUDGET["BudgetName"],
            "BudgetLimit": {"Amount": BUDGET["limit"], "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
            "CostFilters": {"TagKeyValue": [f"user:stage${BUDGET['stage']}"]},
        },
    )
    return f"planted {DAYS} days of the AWS bill (production's NAT data processing x10 on {last_day})"
