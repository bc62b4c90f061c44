"""The alerts a published day deserves: anomalies (cost, tokens, p95 latency), margin under
the floor, a revenue drop, cost drift against the app's estimate, failed payments. Each
says what to do first (seed 000: a runbook line in every alert)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from include.alerts import Alert
from include.economics.margin import ALL_PLANS
from include.money import usd

#: What to look at first, per anomaly signal.
RUNBOOKS = {
    "cost": "Runbook: open the AI economics dashboard for it, then the day's ai_anomalies row; check the "
    "release that shipped that day and the model's prices.",
    "tokens": "Runbook: look for a retry loop or a prompt that grew (the feature's input tokens per request); "
    "check the release that shipped that day.",
    "latency": "Runbook: check the model provider's status and region, the feature's failure rate, and the "
    "release that shipped that day.",
}
#: Revenue (all plans) this far under both the day before and the same weekday a week
#: before: warning, critical; a fall under REVENUE_DROP_MIN_USD pages nobody.
REVENUE_DROP_PCT = {"warning": 20.0, "critical": 40.0}
REVENUE_DROP_MIN_USD = Decimal("20")


def _shown(signal: str, value: float) -> int | float:
    """Tokens are counts, latency whole milliseconds; cost is money to the micro-dollar."""
    return round(value) if signal in ("tokens", "latency") else round(value, 6)


def revenue_drop(day: date, revenue: Decimal, history: Mapping[date, Decimal]) -> Alert | None:
    """Revenue of all plans down against both the day before and the same weekday a week
    before; the smaller fall decides (a Sunday under its Saturday alone is no news)."""
    labels = {day - timedelta(days=1): "the day before", day - timedelta(days=7): "the same weekday a week before"}
    bases = {label: history.get(when) for when, label in labels.items()}
    if any(base is None or base <= 0 for base in bases.values()):
        return None
    drops = {label: float((base - revenue) / base * 100) for label, base in bases.items()}
    least, lost = min(drops.values()), min(bases.values()) - revenue
    if least < REVENUE_DROP_PCT["warning"] or lost < REVENUE_DROP_MIN_USD:
        return None
    week_before = bases[labels[day - timedelta(days=7)]]
    return Alert(
        severity="critical" if least >= REVENUE_DROP_PCT["critical"] else "warning",
        title=f"Revenue down {least:.0f}% on {day} (all plans)",
        metric="revenue_usd",
        value=revenue,
        threshold=week_before,
        threshold_label="the same weekday a week before",
        dimensions={"plan": ALL_PLANS},
        detail="; ".join(f"{usd(bases[label])} {label} ({-drops[label]:+.1f}%)" for label in bases)
        + ". Runbook: the day's failed payments and refunds per plan, the payment provider's status, "
        "and the release that shipped that day.",
    )


def alerts_for(
    summary: dict[str, Any],
    margin_rows: list[dict[str, Any]],
    floor_pct: Decimal,
    revenue_history: Mapping[date, Decimal] | None = None,
) -> list[Alert]:
    """Every alert the day deserves, from the compute step's summary, the margin rows and
    the revenue (all plans) of the week before (:func:`revenue_drop`)."""
    found = [
        Alert(
            severity=a["severity"],
            title=f"{a['signal'].capitalize()} anomaly on {a['dimension']} ({summary['day']})",
            metric=a["signal"],
            value=_shown(a["signal"], a["value"]),
            threshold=_shown(a["signal"], a["baseline"]),
            threshold_label="same-weekday baseline",
            dimensions=dict([a["dimension"].split(":", 1)]),
            detail=f"robust z = {a['z']} against the same-weekday baseline of the previous 28 days. "
            + RUNBOOKS[a["signal"]],
        )
        for a in summary["anomalies"]
    ]
    day = date.fromisoformat(summary["day"])
    everything = next((row for row in margin_rows if row["plan"] == ALL_PLANS), None)
    if everything is not None and revenue_history:
        dropped = revenue_drop(day, Decimal(str(everything["revenue_usd"])), revenue_history)
        found += [dropped] if dropped else []
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
