"""The alerts a published day deserves: anomalies (cost, tokens, p95 latency, failure
rate), margin under the floor, a revenue drop, failed plan renewals, cost drift against
the app's estimate, failed payments. Each says what to do first (seed 000: a runbook line
in every alert)."""

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
    "failure_rate": "Runbook: the feature's error types in the ledger (timeouts, rate limits, provider 5xx), the "
    "model provider's status, and the release that shipped that day.",
}
SIGNAL_NAMES = {"failure_rate": "Failure rate"}
#: Revenue (all plans) this far under both the day before and the same weekday a week
#: before: warning, critical; a fall under REVENUE_DROP_MIN_USD pages nobody.
REVENUE_DROP_PCT = {"warning": 20.0, "critical": 40.0}
REVENUE_DROP_MIN_USD = Decimal("20")
#: Share of the day's plan renewals that failed (percent): warning, critical; fewer than
#: RENEWAL_FAILURE_MIN failed renewals page nobody.
RENEWAL_FAILURE_PCT = {"warning": 20.0, "critical": 50.0}
RENEWAL_FAILURE_MIN = 2


def _shown(signal: str, value: float) -> int | float:
    """Tokens are counts, latency whole milliseconds, a failure rate a percentage; cost is
    money to the micro-dollar."""
    if signal == "failure_rate":
        return round(value * 100, 2)
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


def renewal_failures(day: date, payments: Mapping[str, Mapping[str, int]], at_risk: Decimal) -> Alert | None:
    """Plan renewals that failed, over all plans: recurring revenue slipping away, which a
    one-off failed charge is not. Alerts from RENEWAL_FAILURE_MIN failures and
    RENEWAL_FAILURE_PCT of the day's renewal attempts."""
    failed = sum(kinds["failed_renewals"] for kinds in payments.values())
    attempted = failed + sum(kinds["renewals"] for kinds in payments.values())
    share = failed / attempted * 100 if attempted else 0.0
    if failed < RENEWAL_FAILURE_MIN or share < RENEWAL_FAILURE_PCT["warning"]:
        return None
    per_plan = [
        f"{plan} {kinds['failed_renewals']} of {kinds['failed_renewals'] + kinds['renewals']}"
        for plan, kinds in sorted(payments.items())
        if kinds["failed_renewals"]
    ]
    return Alert(
        severity="critical" if share >= RENEWAL_FAILURE_PCT["critical"] else "warning",
        title=f"{failed} of {attempted} plan renewals failed on {day} ({share:.0f}%)",
        metric="renewal_failure_pct",
        value=round(share, 1),
        threshold=RENEWAL_FAILURE_PCT["warning"],
        dimensions={"plan": ALL_PLANS},
        detail=f"failed per plan: {'; '.join(per_plan)}; {usd(at_risk)} of renewals at risk. "
        "Runbook: the payment provider's declines for the day (card expiry, insufficient funds, an outage "
        "when they all fail at once), then the dunning retries; failed first charges alert apart.",
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
            title=f"{SIGNAL_NAMES.get(a['signal'], a['signal'].capitalize())} anomaly on {a['dimension']} "
            f"({summary['day']})",
            metric="failure_rate_pct" if a["signal"] == "failure_rate" else a["signal"],
            value=_shown(a["signal"], a["value"]),
            threshold=_shown(a["signal"], a["baseline"]),
            threshold_label="same-weekday baseline",
            dimensions=dict([a["dimension"].split(":", 1)]) | ({"release": a["release"]} if a.get("release") else {}),
            detail=f"robust z = {a['z']} against the same-weekday baseline of the previous 28 days. "
            + (f"{a['release_note']} " if a.get("release_note") else "")
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
        pct, lost = row["margin_pct"], Decimal(str(row["margin_usd"])) < 0
        # the whole platform losing money with no revenue to take a share of (refunds
        # exceeded it) is the worst case, not a day without a percentage
        if (pct is not None and Decimal(str(pct)) < floor_pct) or (pct is None and lost and row["plan"] == ALL_PLANS):
            found.append(
                Alert(
                    severity="critical" if lost else "warning",
                    title=f"Margin below {floor_pct}% for plan {row['plan']} ({summary['day']})",
                    metric="margin_usd" if pct is None else "margin_pct",
                    value=row["margin_usd"] if pct is None else pct,
                    threshold=0 if pct is None else floor_pct,
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
    renewals = renewal_failures(day, summary["payments"], Decimal(summary["renewals_at_risk_usd"]))
    found += [renewals] if renewals else []
    for plan, kinds in summary["payments"].items():
        if kinds["failed_payments"]:
            found.append(
                Alert(
                    severity="warning",
                    title=f"{kinds['failed_payments']} failed payment(s) on plan {plan} ({summary['day']})",
                    metric="failed_payments",
                    value=kinds["failed_payments"],
                    dimensions={"plan": plan},
                )
            )
    return found
