"""The alerts a published day deserves: anomalies, margin under the floor, cost drift
against the app's estimate, failed payments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from include.alerts import Alert


def _shown(signal: str, value: float) -> int | float:
    """Tokens are counts; cost is money to the micro-dollar."""
    return round(value) if signal == "tokens" else round(value, 6)


def alerts_for(summary: dict[str, Any], margin_rows: list[dict[str, Any]], floor_pct: Decimal) -> list[Alert]:
    """Every alert the day deserves, from the compute step's summary and the margin rows."""
    found = [
        Alert(
            severity=a["severity"],
            title=f"{a['signal'].capitalize()} anomaly on {a['dimension']} ({summary['day']})",
            metric=a["signal"],
            value=_shown(a["signal"], a["value"]),
            threshold=_shown(a["signal"], a["baseline"]),
            threshold_label="same-weekday baseline",
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
