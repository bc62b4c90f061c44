"""The weekly review (seed 000, Phase F): model mix, cost per feature and plan,
regressions, anomalies, GPU fleets and data quality of one ISO week, against the week
before, so decisions follow trends rather than impressions.

Every figure is read from the warehouse tables ``ai_economics_daily`` publishes; nothing
is recomputed from the ledger. Where a table holds a per-day figure that does not add
up over days, the week's figure is said in its label:

* **DAU** is the mean of the published days' DAU; **weekly active users** (for cost per
  user) are the distinct ``user_id``\\ s of ``ai_cost_daily`` over the week;
* **p95 latency** is the request-weighted mean of the daily p95 (a percentile of a
  week cannot be made from daily percentiles; the weighting keeps a quiet Sunday from
  counting as much as a busy Tuesday);
* **failure rate** is the week's failures over its requests.

A day the warehouse does not have (its run failed the gate, or never ran) is *missing*:
the review says which, and the totals leave it out. :class:`Coverage` tells; a strict
caller refuses to build the pack instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pandas as pd

from include.devnodes.usage import DevNodeCost
from include.economics import aws_spend, conversion, margin, releases
from include.economics.actions import actions
from include.economics.bill_reconciliation import AWAITING
from include.economics.review_model import (
    AnomalyReview,
    BillReview,
    CostRow,
    FleetReview,
    Metric,
    MixRow,
    QualityDay,
    QualityFinding,
    Regression,
    Review,
    Rules,
    per_request,
)
from include.economics.week_reads import WeekTables

ZERO = Decimal(0)


def _whole_platform(tables: WeekTables) -> pd.DataFrame:
    """The margin table's ``all`` rows: the whole platform, day by day."""
    margins = tables.frames["ai_margin_daily"]
    return margins[margins["plan"] == margin.ALL_PLANS]


def _money(values) -> Decimal:
    return sum((Decimal(v) for v in values if v is not None), ZERO)


def _weighted_p95(frame: pd.DataFrame) -> float | None:
    rows = frame[frame["p95_ms"].notna() & (frame["requests"] > 0)]
    if rows.empty:
        return None
    return round(float((rows["p95_ms"] * rows["requests"]).sum() / rows["requests"].sum()), 1)


def _totals(tables: WeekTables) -> dict[str, float | Decimal | None]:
    usage = tables.frames["ai_usage_daily"]
    everything = _whole_platform(tables)
    requests = int(usage["requests"].sum()) if not usage.empty else 0
    revenue = _money(everything["revenue_usd"])
    margin_usd = _money(everything["margin_usd"])
    return {
        "ai_cost_usd": _money(everything["ai_cost_usd"]),
        "infra_cost_usd": _money(everything["infra_cost_usd"]),
        "revenue_usd": revenue,
        "margin_usd": margin_usd,
        "margin_pct": margin.margin_pct(margin_usd, revenue),
        "requests": requests,
        "dau": round(float(usage["dau"].mean()), 1) if not usage.empty else None,
        "failure_rate": round(int(usage["failures"].sum()) / requests, 6) if requests else None,
        "p95_ms": _weighted_p95(usage) if not usage.empty else None,
        **conversion.week_figures(tables.frames["ai_conversion_daily"]),
    }


HEADLINE = (
    ("ai_cost_usd", "AI cost", "usd", False),
    ("infra_cost_usd", "GPU infrastructure", "usd", False),
    ("revenue_usd", "Revenue", "usd", True),
    ("margin_usd", "Margin", "usd", True),
    ("margin_pct", "Margin %", "pct", True),
    ("requests", "Requests", "count", True),
    ("dau", "DAU (daily mean)", "count", True),
    ("failure_rate", "Failure rate", "ratio", False),
    ("p95_ms", "p95 latency (request-weighted daily p95)", "ms", False),
    ("conversions", "Conversions (free → paid)", "count", True),
    ("conversion_pct", "Conversion rate (of the week's free users)", "pct", True),
)


def _headline(this: WeekTables, previous: WeekTables) -> list[Metric]:
    now, before = _totals(this), _totals(previous)
    if not previous.coverage.published:
        before = dict.fromkeys(before)
    return [Metric(key, label, unit, now[key], before[key], better) for key, label, unit, better in HEADLINE]


def _daily(tables: WeekTables) -> pd.DataFrame:
    everything = _whole_platform(tables)
    usage = tables.frames["ai_usage_daily"][["day", "requests"]]
    frame = pd.DataFrame({"day": tables.week.days()})
    frame = frame.merge(everything[["day", "ai_cost_usd", "infra_cost_usd", "revenue_usd", "margin_usd"]], how="left")
    return frame.merge(usage, how="left")


def _sums(frame: pd.DataFrame, key: str) -> dict[str, tuple[int, Decimal]]:
    """key -> (requests, cost) over the week."""
    found: dict[str, tuple[int, Decimal]] = {}
    for row in frame.to_dict("records"):
        requests, cost = found.get(row[key], (0, ZERO))
        found[row[key]] = (requests + int(row["requests"]), cost + Decimal(row["cost_usd"] or 0))
    return found


def _model_mix(this: WeekTables, previous: WeekTables) -> list[MixRow]:
    now, before = (
        _sums(this.frames["ai_model_daily"], "model_name"),
        _sums(previous.frames["ai_model_daily"], "model_name"),
    )
    requests = sum(r for r, _ in now.values()) or 1
    cost = sum((c for _, c in now.values()), ZERO) or Decimal(1)
    before_cost = sum((c for _, c in before.values()), ZERO)
    rows = [
        MixRow(
            model=model,
            requests=r,
            cost_usd=c,
            request_share=round(r / requests * 100, 2),
            cost_share=round(float(c / cost * 100), 2),
            previous_cost_share=round(float(before.get(model, (0, ZERO))[1] / before_cost * 100), 2)
            if before_cost
            else None,
            previous_cost_usd=before.get(model, (0, ZERO))[1] if before_cost else None,
        )
        for model, (r, c) in now.items()
    ]
    return sorted(rows, key=lambda row: row.cost_usd, reverse=True)


def _cost_per_request(sums: Mapping[str, tuple[int, Decimal]], name: str) -> Decimal | None:
    requests, cost = sums.get(name, (0, ZERO))
    return per_request(cost, requests)


def _features(this: WeekTables, previous: WeekTables) -> list[CostRow]:
    now = _sums(this.frames["ai_feature_daily"], "feature_name")
    before = _sums(previous.frames["ai_feature_daily"], "feature_name")
    rows = [
        CostRow(
            name,
            r,
            c,
            this.users_by_feature.get(name),
            _cost_per_request(before, name),
            previous_cost_usd=before[name][1] if name in before else None,
        )
        for name, (r, c) in now.items()
    ]
    return sorted(rows, key=lambda row: row.cost_usd, reverse=True)


def _plans(this: WeekTables, previous: WeekTables) -> list[CostRow]:
    usage = _sums(this.frames["ai_plan_daily"], "plan")
    before = _sums(previous.frames["ai_plan_daily"], "plan")
    margins, earlier = this.frames["ai_margin_daily"], previous.frames["ai_margin_daily"]
    rows = []
    for plan, frame in margins[margins["plan"] != margin.ALL_PLANS].groupby("plan"):
        revenue, margin_usd = _money(frame["revenue_usd"]), _money(frame["margin_usd"])
        requests, _ = usage.get(plan, (0, ZERO))
        rows.append(
            CostRow(
                name=plan,
                requests=requests,
                cost_usd=_money(frame["ai_cost_usd"]),
                users=this.users_by_plan.get(plan),
                previous_cost_per_request=_cost_per_request(before, plan),
                revenue_usd=revenue,
                margin_usd=margin_usd,
                margin_pct=margin.margin_pct(margin_usd, revenue),
                previous_revenue_usd=_money(earlier.loc[earlier["plan"] == plan, "revenue_usd"]),
            )
        )
    return sorted(rows, key=lambda row: row.revenue_usd or ZERO, reverse=True)


def _dimension_figures(frame: pd.DataFrame, key: str) -> dict[str, dict[str, float]]:
    figures = {}
    for name, rows in frame.groupby(key):
        requests = int(rows["requests"].sum())
        if not requests:
            continue
        figures[name] = {
            "requests": requests,
            "cost_per_request": float(_money(rows["cost_usd"]) / requests),
            "failure_rate": int(rows["failures"].sum()) / requests,
            "p95_ms": _weighted_p95(rows),
        }
    return figures


def _regressions(this: WeekTables, previous: WeekTables, rules: Rules) -> list[Regression]:
    """Features and models worse than the week before, each with the release it started
    with when one began serving it then (:func:`releases.regression_link`)."""
    mix = pd.concat([previous.frames["ai_release_daily"], this.frames["ai_release_daily"]], ignore_index=True)
    found = []
    for dimension, table, key in (
        ("feature", "ai_feature_daily", "feature_name"),
        ("model", "ai_model_daily", "model_name"),
    ):
        now = _dimension_figures(this.frames[table], key)
        before = _dimension_figures(previous.frames[table], key)
        for name in sorted(set(now) & set(before)):
            a, b = before[name], now[name]
            if min(a["requests"], b["requests"]) < rules.min_requests:
                continue
            checks = (
                (
                    "cost_per_request",
                    a["cost_per_request"]
                    and b["cost_per_request"] > a["cost_per_request"] * (1 + rules.cost_per_request_pct / 100),
                ),
                ("failure_rate", b["failure_rate"] - a["failure_rate"] >= rules.failure_rate_pp / 100),
                ("p95_ms", a["p95_ms"] and b["p95_ms"] and b["p95_ms"] > a["p95_ms"] * (1 + rules.p95_pct / 100)),
            )
            rows = this.frames[table][this.frames[table][key] == name]
            for metric, _ in filter(lambda check: check[1], checks):
                link = releases.regression_link(rows, dimension, name, metric, a[metric], b[metric], mix)
                found.append(
                    Regression(f"{dimension}:{name}", metric, a[metric], b[metric], link.release if link else None)
                )
    return found


def _anomalies(tables: WeekTables) -> list[AnomalyReview]:
    frame = tables.frames["ai_anomalies"]
    published = tables.coverage.published
    reviews = []
    for (signal, dimension), rows in frame.groupby(["signal", "dimension"]):
        peak = rows.loc[rows["value"].map(float).idxmax()]
        reviews.append(
            AnomalyReview(
                signal=signal,
                dimension=dimension,
                severity="critical" if (rows["severity"] == "critical").any() else "warning",
                days=tuple(sorted(rows["day"])),
                peak_value=peak["value"],
                baseline=peak["baseline"],
                open_at_week_end=bool(published) and published[-1] in set(rows["day"]),
                release=next(iter(rows["release"].dropna()), None) if "release" in rows else None,
            )
        )
    return sorted(reviews, key=lambda a: (a.severity != "critical", -len(a.days), a.dimension, a.signal))


def _fleets(tables: WeekTables, metrics: Mapping[str, Mapping[str, float | None]]) -> list[FleetReview]:
    reviews = []
    for (stage, fleet), rows in tables.frames["ai_fleet_daily"].groupby(["stage", "fleet"]):
        hours = rows["gpu_hours"].dropna()
        reviews.append(
            FleetReview(
                stage=stage,
                fleet=fleet,
                gpu_hours=round(float(hours.sum()), 2) if not hours.empty else None,
                cost_usd=_money(rows["cost_usd"]),
                cost_source=", ".join(sorted(set(rows["cost_source"]))),
                **metrics.get(f"{stage}/{fleet}", {}),
            )
        )
    return reviews


def _bills(tables: WeekTables) -> list[BillReview]:
    frame = tables.frames["ai_billing_reconciliation"]
    reviews = []
    for provider, rows in frame.groupby("provider"):
        billed = rows[rows["status"].isin(["ok", "drift"])]
        our, paid = _money(billed["our_cost_usd"]), _money(billed["billed_cost_usd"])
        reviews.append(
            BillReview(
                provider=provider,
                billed_usd=paid,
                our_usd=our,
                drift_pct=round(float((our - paid) / paid * 100), 2) if paid else None,
                drifts=int((rows["status"] == "drift").sum()),
                unpriced_usd=_money(rows.loc[rows["status"] == "unpriced", "billed_cost_usd"]),
                awaiting_days=int((rows["status"] == AWAITING).sum()),
            )
        )
    return reviews


def _dev_nodes(tables: WeekTables) -> list[DevNodeCost]:
    frame = tables.frames["ai_devnode_daily"]
    reviews = [
        DevNodeCost(
            stage=stage,
            name=name,
            owner=", ".join(sorted(set(rows["owner"]))),
            instance_type=", ".join(sorted(set(rows["instance_type"]))),
            node_hours=round(float(rows["node_hours"].sum()), 2),
            cost_usd=_money(rows["cost_usd"]),
        )
        for (stage, name), rows in frame.groupby(["stage", "name"])
    ]
    return sorted(reviews, key=lambda r: (-r.cost_usd, r.stage, r.name))


def _quality(tables: WeekTables) -> tuple[list[QualityDay], list[QualityFinding]]:
    frame = tables.frames["ai_quality_daily"]
    published = set(tables.coverage.published)
    days = []
    for day in tables.week.days():
        rows = frame[frame["day"] == day]
        warnings = tuple(rows[~rows["passed"].astype(bool)]["expectation"])
        days.append(QualityDay(day, day in published, len(rows), warnings))
    failed = frame[~frame["passed"].astype(bool)] if not frame.empty else frame
    findings = [
        QualityFinding(expectation, rows["severity"].iloc[0], rows["day"].nunique(), int(rows["failed_rows"].sum()))
        for expectation, rows in failed.groupby("expectation")
    ]
    return days, sorted(findings, key=lambda f: (-f.days, -f.failed_rows))


def build_review(
    this: WeekTables,
    previous: WeekTables,
    fleet_metrics: Mapping[str, Mapping[str, float | None]] | None = None,
    rules: Rules | None = None,
) -> Review:
    """The whole review of ``this`` week against ``previous``.

    :param fleet_metrics: ``"<stage>/<fleet>"`` -> the week's CloudWatch figures
        (:func:`fleet_week_figures`), for the fleets section.
    """
    rules = rules or Rules()
    quality_days, findings = _quality(this)
    fleet_days = this.frames["ai_fleet_daily"][["day", "stage", "fleet", "gpu_hours"]]
    review = Review(
        week=this.week,
        coverage=this.coverage,
        previous_coverage=previous.coverage,
        headline=_headline(this, previous),
        daily=_daily(this),
        model_mix=_model_mix(this, previous),
        features=_features(this, previous),
        plans=_plans(this, previous),
        regressions=_regressions(this, previous, rules),
        anomalies=_anomalies(this),
        fleets=_fleets(this, fleet_metrics or {}),
        dev_nodes=_dev_nodes(this),
        fleet_days=fleet_days,
        quality_days=quality_days,
        quality_findings=findings,
        bills=_bills(this),
        aws_spend=aws_spend.week_review(this.frames["aws_spend_daily"], previous.frames["aws_spend_daily"]),
    )
    review.actions.extend(actions(review, rules))
    return review


#: CloudWatch statistic per ``ComfyUI/Workers`` metric the fleets section reads, per day
FLEET_METRICS = {
    "QueueDepth": ("Maximum", "Average"),
    "ActiveWorkers": ("Maximum", "Average"),
    "ErrorRate": ("Average",),
    "SpotInterruptionCount": ("Sum",),
}


def fleet_week_figures(daily: Mapping[tuple[str, str], list[float]]) -> dict[str, float | int | None]:
    """The week's figures from the daily values of ``(metric, statistic)``; None without data."""

    def values(metric: str, statistic: str) -> list[float]:
        return daily.get((metric, statistic), [])

    def mean(points: list[float]) -> float | None:
        return round(sum(points) / len(points), 2) if points else None

    spot = values("SpotInterruptionCount", "Sum")
    return {
        "queue_depth_max": max(values("QueueDepth", "Maximum"), default=None),
        "queue_depth_avg": mean(values("QueueDepth", "Average")),
        "active_workers_avg": mean(values("ActiveWorkers", "Average")),
        "active_workers_max": max(values("ActiveWorkers", "Maximum"), default=None),
        "error_rate_avg": mean(values("ErrorRate", "Average")),
        "spot_interruptions": int(sum(spot)) if spot else None,
    }
