"""Revenue, margin and the reconciliation of recomputed cost against the app's estimate.

Revenue rules: ``charge`` and ``renewal`` add on the day they occur, ``refund``
subtracts; ``failed_payment`` (a charge that failed) and ``failed_renewal`` (a plan's
renewal that failed: recurring revenue at risk) are not revenue, they are counted for
the alerts, and renewals attempted are counted beside them. Amounts are
positive in the ledger. A non-USD amount converts with the most recent FX rate dated
on or before the day; a currency with no such rate is reported (the data-quality gate
fails on it) and left out of revenue.

Margin per plan = revenue - AI cost - GPU infrastructure cost. Infrastructure is
shared by every plan, so it is allocated to plans by their share of the day's AI cost
(a plan that used 30% of the AI spend carries 30% of the GPU bill); the rounding
remainder goes to the plan with the largest share, so plan rows add up to ``all``
exactly. ``margin_pct`` is margin / revenue in percent, empty when there is no revenue
(or refunds exceed it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.ledger import DayWindow, fx_rates, revenue_events
from include.economics.prices import to_money

REVENUE_SIGN = {"charge": 1, "renewal": 1, "refund": -1, "failed_payment": 0, "failed_renewal": 0}
#: Kinds that are counted per plan for the alerts and the ``ai_payment`` measurement.
COUNTED_KINDS = {"failed_payment": "failed_payments", "renewal": "renewals", "failed_renewal": "failed_renewals"}
ALL_PLANS = "all"
#: The margin (percent of revenue) under which a day alerts, unless Variable margin_floor_pct says otherwise.
MARGIN_FLOOR_PCT = Decimal(20)
ZERO = Decimal(0)


@dataclass
class Revenue:
    by_plan: dict[str, Decimal] = field(default_factory=dict)
    failed_payments: dict[str, int] = field(default_factory=dict)
    #: plan -> renewals that went through, and those that failed
    renewals: dict[str, int] = field(default_factory=dict)
    failed_renewals: dict[str, int] = field(default_factory=dict)
    #: what the failed renewals would have brought in, in USD
    renewals_at_risk_usd: Decimal = ZERO
    refunds_usd: Decimal = ZERO
    #: currency -> events that could not be converted (no FX rate on or before the day)
    missing_rates: dict[str, int] = field(default_factory=dict)
    unknown_kinds: dict[str, int] = field(default_factory=dict)

    def payments(self) -> dict[str, dict[str, int]]:
        """Plan -> the counted kinds (failed payments, renewals, failed renewals), every
        plan with any of them carrying all three."""
        counted = {name: getattr(self, name) for name in COUNTED_KINDS.values()}
        plans = sorted(set().union(*counted.values()))
        return {plan: {name: counts.get(plan, 0) for name, counts in counted.items()} for plan in plans}


def day_revenue_groups(engine: Engine, day: date) -> pd.DataFrame:
    """Sum of amounts per (plan, currency, kind) for the day, pushed down to SQL."""
    events = revenue_events.c
    window = DayWindow(day)
    query = (
        sa.select(
            events.plan,
            events.currency,
            events.kind,
            sa.func.count().label("events"),
            sa.func.sum(events.amount).label("amount"),
        )
        .where(events.occurred_at >= window.start, events.occurred_at < window.end)
        .group_by(events.plan, events.currency, events.kind)
    )
    with engine.connect() as connection:
        return pd.DataFrame(
            connection.execute(query).mappings().all(), columns=["plan", "currency", "kind", "events", "amount"]
        )


def fx_for_day(engine: Engine, day: date) -> dict[str, Decimal]:
    """currency -> USD per unit, the most recent rate dated on or before ``day``."""
    rates = fx_rates.c
    latest = (
        sa.select(rates.currency, sa.func.max(rates.day).label("day")).where(rates.day <= day).group_by(rates.currency)
    ).subquery()
    query = sa.select(rates.currency, rates.usd_per_unit).join(
        latest, sa.and_(rates.currency == latest.c.currency, rates.day == latest.c.day)
    )
    with engine.connect() as connection:
        found = {row.currency: Decimal(row.usd_per_unit) for row in connection.execute(query)}
    found["USD"] = Decimal(1)
    return found


def revenue_by_plan(groups: pd.DataFrame, fx: Mapping[str, Decimal]) -> Revenue:
    revenue = Revenue()
    for row in groups.itertuples():
        plan, currency, kind = row.plan or "none", (row.currency or "").upper(), row.kind
        if kind not in REVENUE_SIGN:
            revenue.unknown_kinds[kind] = revenue.unknown_kinds.get(kind, 0) + int(row.events)
            continue
        if kind in COUNTED_KINDS:
            counts = getattr(revenue, COUNTED_KINDS[kind])
            counts[plan] = counts.get(plan, 0) + int(row.events)
        if kind == "failed_payment":
            continue
        if currency not in fx:
            revenue.missing_rates[currency] = revenue.missing_rates.get(currency, 0) + int(row.events)
            continue
        usd = Decimal(row.amount) * fx[currency]
        if kind == "failed_renewal":
            revenue.renewals_at_risk_usd += usd
            continue
        revenue.by_plan[plan] = revenue.by_plan.get(plan, ZERO) + REVENUE_SIGN[kind] * usd
        if kind == "refund":
            revenue.refunds_usd += usd
    return revenue


def allocate(total: Decimal, weights: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Split ``total`` over ``weights`` proportionally, to the micro-dollar, exactly."""
    positive = {key: weight for key, weight in weights.items() if weight > 0}
    if not positive:
        return dict.fromkeys(weights, ZERO)
    weight_sum = sum(positive.values(), ZERO)
    shares = {key: to_money(total * weight / weight_sum) for key, weight in positive.items()}
    largest = max(sorted(positive), key=lambda key: positive[key])  # the first of equals, by name
    shares[largest] += to_money(total) - sum(shares.values(), ZERO)
    return {key: shares.get(key, ZERO) for key in weights}


def margin_pct(margin: Decimal, revenue: Decimal) -> Decimal | None:
    """Margin as a percentage of revenue, to the hundredth; None without revenue, and when
    refunds exceed it (a share of a negative revenue reads as a healthy margin: a day of
    -$29 revenue and -$490 margin would say 1,690 %)."""
    return (margin / revenue * 100).quantize(Decimal("0.01")) if revenue > 0 else None


def margin_table(
    day: date,
    ai_cost_by_plan: Mapping[str, Decimal],
    revenue: Revenue,
    infra_cost_usd: Decimal,
) -> pd.DataFrame:
    """One row per plan plus ``all``: revenue, AI cost, infra cost, margin, margin %."""
    plans = sorted(set(ai_cost_by_plan) | set(revenue.by_plan))
    infra = allocate(infra_cost_usd, {plan: ai_cost_by_plan.get(plan, ZERO) for plan in plans})
    rows = []
    for plan in [*plans, ALL_PLANS]:
        if plan == ALL_PLANS:
            income = sum(revenue.by_plan.values(), ZERO)
            ai = sum(ai_cost_by_plan.values(), ZERO)
            gpu = to_money(infra_cost_usd)
        else:
            income, ai, gpu = revenue.by_plan.get(plan, ZERO), ai_cost_by_plan.get(plan, ZERO), infra[plan]
        margin = to_money(income) - to_money(ai) - gpu
        rows.append(
            {
                "day": day,
                "plan": plan,
                "revenue_usd": to_money(income),
                "ai_cost_usd": to_money(ai),
                "infra_cost_usd": gpu,
                "margin_usd": margin,
                "margin_pct": margin_pct(margin, to_money(income)),
            }
        )
    return pd.DataFrame(rows, dtype=object)


@dataclass(frozen=True)
class Reconciliation:
    """Recomputed cost against the app's own estimate at request time."""

    cost_usd: Decimal
    estimated_usd: Decimal
    drift_pct: float | None
    worst_models: list[tuple[str, Decimal, Decimal, float | None]]
    threshold_pct: float

    @property
    def warning(self) -> bool:
        return self.drift_pct is not None and abs(self.drift_pct) > self.threshold_pct


def _drift(cost: Decimal, estimated: Decimal) -> float | None:
    return float(round((estimated - cost) / cost * 100, 2)) if cost else None


def reconcile(groups: pd.DataFrame, *, threshold_pct: float = 5.0, worst: int = 3) -> Reconciliation:
    """Drift in percent of the recomputed cost, in total and for the worst models."""
    priced = groups[groups["cost_usd"].notna()]
    cost = sum(priced["cost_usd"], ZERO)
    estimated = sum((Decimal(v) for v in priced["estimated_cost"] if v is not None), ZERO)
    by_model = []
    for model, frame in priced.groupby("model_name"):
        model_cost = sum(frame["cost_usd"], ZERO)
        model_estimate = sum((Decimal(v) for v in frame["estimated_cost"] if v is not None), ZERO)
        by_model.append((model, to_money(model_cost), to_money(model_estimate), _drift(model_cost, model_estimate)))
    by_model.sort(key=lambda entry: abs(entry[1] - entry[2]), reverse=True)
    return Reconciliation(to_money(cost), to_money(estimated), _drift(cost, estimated), by_model[:worst], threshold_pct)
