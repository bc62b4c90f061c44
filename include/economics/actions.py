"""What the week's review asks people to do, derived from its figures and the rules."""

from __future__ import annotations

from decimal import Decimal

from include.economics.review_model import Action, Regression, Review, Rules
from include.money import usd


def _regression_groups(regressions: list[Regression]) -> list[tuple[list[str], list[Regression]]]:
    """Regressions of dimensions with the very same figures are one finding: a feature
    served by one model shows the same failure rate as the model. Grouped by the
    dimensions that share every figure, in the order found."""
    same: dict[tuple, list[str]] = {}
    for regression in regressions:
        key = (regression.metric, regression.previous, regression.current)
        same.setdefault(key, []).append(regression.dimension)
    groups: dict[tuple[str, ...], list[Regression]] = {}
    for regression in regressions:
        dimensions = tuple(same[(regression.metric, regression.previous, regression.current)])
        if regression.dimension == dimensions[0]:
            groups.setdefault(dimensions, []).append(regression)
    return [(list(dimensions), found) for dimensions, found in groups.items()]


def _cost_driver(review: Review) -> str:
    """What drove a margin drop: the feature and the model whose cost rose most, and the
    release the change of either started with (its anomaly or regression names it)."""
    features = [(f.cost_usd - f.previous_cost_usd, f"feature:{f.name}") for f in review.features if f.previous_cost_usd]
    models = [(m.cost_usd - m.previous_cost_usd, f"model:{m.model}") for m in review.model_mix if m.previous_cost_usd]
    rises = [max(found) for found in (features, models) if found and max(found)[0] > 0]
    if not rises:
        return ""
    named = " and ".join(f"{dimension.replace(':', ' ')} (+{usd(rise)})" for rise, dimension in rises)
    dimensions = {dimension for _, dimension in rises}
    release = next(
        (f.release for f in [*review.anomalies, *review.regressions] if f.dimension in dimensions and f.release), None
    )
    return f"; the largest cost rises are {named}" + (f", started with release {release}" if release else "")


def _big_moves(review: Review, rules: Rules) -> list[Action]:
    """A revenue or margin drop beyond its rule, with the plan, feature, model or release that drove it."""
    found = []
    revenue, profit = review.metric("revenue_usd"), review.metric("margin_usd")
    if revenue.change is not None and revenue.change <= -rules.revenue_drop_pct:
        moved = [
            (p.revenue_usd - p.previous_revenue_usd, p.name)
            for p in review.plans
            if p.revenue_usd is not None and p.previous_revenue_usd is not None
        ]
        lost, plan = min(moved, default=(Decimal(0), None))
        driver = f"; most of it plan {plan} ({usd(lost)})" if plan and lost < 0 else ""
        said = f"{usd(revenue.previous)} to {usd(revenue.value)}"
        found.append(
            Action(
                "high",
                f"Revenue fell {-revenue.change:.1f}% week over week ({said}){driver}: "
                "check its renewals, failed payments and refunds.",
            )
        )
    if profit.change is not None and profit.change <= -rules.margin_drop_pct:
        said = f"{usd(profit.previous)} to {usd(profit.value)}"
        found.append(
            Action(
                "high",
                f"Margin fell {-profit.change:.1f}% week over week ({said}){_cost_driver(review)}: "
                "see its regressions and anomalies below.",
            )
        )
    return found


def actions(review: Review, rules: Rules) -> list[Action]:
    actions = _big_moves(review, rules)
    if review.coverage.missing:
        days = ", ".join(d.isoformat() for d in review.coverage.missing)
        actions.append(
            Action(
                "high",
                f"Re-run ai_economics_daily for {days} (a failed gate or a run that never ran): "
                "this week's totals leave those days out.",
            )
        )
    ai_cost = sum((plan.cost_usd for plan in review.plans), Decimal(0))
    for plan in review.plans:
        if plan.margin_pct is not None and plan.margin_pct < Decimal(str(rules.margin_floor_pct)):
            actions.append(
                Action(
                    "high",
                    f"Plan {plan.name} ran at a {plan.margin_pct}% margin, under the "
                    f"{rules.margin_floor_pct:g}% floor: review its price or its AI usage.",
                )
            )
        elif plan.margin_pct is None and plan.margin_usd is not None and plan.margin_usd < 0:
            share = float(plan.cost_usd / ai_cost * 100) if ai_cost else 0.0
            actions.append(
                Action(
                    "high" if share >= rules.mix_shift_pp else "medium",
                    f"Plan {plan.name} earned no revenue and cost {usd(plan.cost_usd)} ({share:.0f}% of the "
                    f"week's AI cost, margin {usd(plan.margin_usd)}): cap its usage or route it to cheaper models.",
                )
            )
    for dimensions, found in _regression_groups(review.regressions):
        same = f" (and {', '.join(dimensions[1:])}: the same requests)" if len(dimensions) > 1 else ""
        changes = "; ".join(f"{r.label} {r.change}" for r in found)
        started = sorted({r.release for r in found if r.release})
        since = f", started with release {', '.join(started)}" if started else ""
        actions.append(Action("medium", f"Investigate {dimensions[0]}{same}: {changes} week over week{since}."))
    for anomaly in review.anomalies:
        if len(anomaly.days) > 1 or anomaly.open_at_week_end:
            actions.append(
                Action(
                    "high" if anomaly.severity == "critical" else "medium",
                    f"The {anomaly.signal} anomaly on {anomaly.dimension} {anomaly.status}: "
                    + (
                        f"it started with release {anomaly.release}: fix or roll back that release, or raise "
                        "its baseline."
                        if anomaly.release
                        else "find its cause (release, retry loop, new customer) or raise its baseline."
                    ),
                )
            )
    for row in review.model_mix:
        if row.cost_shift_pp is not None and abs(row.cost_shift_pp) >= rules.mix_shift_pp:
            actions.append(
                Action(
                    "low",
                    f"{row.model}'s share of AI cost moved {row.cost_shift_pp:+.1f} pp: confirm the "
                    "routing change was intended.",
                )
            )
    for fleet in review.fleets:
        name = f"{fleet.stage}/{fleet.fleet}"
        if fleet.spot_interruptions is not None and fleet.spot_interruptions >= rules.spot_interruptions:
            actions.append(
                Action(
                    "medium",
                    f"Fleet {name} lost {fleet.spot_interruptions} Spot instances: widen its "
                    "instance types or Availability Zones.",
                )
            )
        if fleet.error_rate_avg is not None and fleet.error_rate_avg >= rules.fleet_error_rate_pct:
            actions.append(
                Action(
                    "high",
                    f"Fleet {name} failed {fleet.error_rate_avg:.1f}% of its jobs on average: check its workers' logs.",
                )
            )
    for finding in review.quality_findings:
        if finding.days >= rules.recurring_warning_days:
            actions.append(
                Action(
                    "low",
                    f"The data-quality check '{finding.expectation}' warned on {finding.days} days "
                    f"({finding.failed_rows} rows): fix it at the source.",
                )
            )
    order = {"high": 0, "medium": 1, "low": 2}
    return sorted(actions, key=lambda a: order[a.severity])
