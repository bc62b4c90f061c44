"""The whole AWS bill of a day, per stage, with seed 003's cost hotspots named.

Seed 003 lists what surprises a month's bill: NAT Gateway data processing (GPU workers in
private subnets calling a public ALB), CloudWatch Logs volume, S3/CloudFront egress of
delivered media and Spot GPU leaks; its first recommendation is "cost guardrails (budgets
+ tags + NAT/log visibility)". Cost Explorer gives the day by service and usage type,
per stage through the ``stage`` cost-allocation tag; each line is put in its hotspot by
its service and usage type (AWS names the usage types ``<region>-NatGateway-Bytes``,
``<region>-DataProcessing-Bytes`` for CloudWatch Logs ingestion,
``<region>-DataTransfer-Out-Bytes``, ``<region>-SpotUsage:<type>``/``BoxUsage:<type>``).

A hotspot's day is judged twice:

* against its **budget** (Variable ``aws_daily_budgets``: ``{"<stage>": {"<hotspot>" or
  "total": USD}}``): over it is critical;
* against a **robust baseline**, the method the economics' anomalies use
  (:func:`include.economics.anomalies.judge`: same-weekday median, MAD spread, z 3.5 / 6,
  a materiality floor), over the 28 days Cost Explorer gives in the same call.

AWS Cost Anomaly Detection's anomalies and AWS Budgets' state join the same findings: an
anomaly whose root cause falls in a hotspot already found is said in that finding (never
a second alert), any other is a finding of its own; a budget over (or forecast over) its
limit is one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from include.alerts import Alert
from include.economics import anomalies
from include.economics.cost_hotspots import BY_NAME, EC2_COMPUTE, OTHER, hotspot_of, label_of
from include.economics.exports import day_point
from include.economics.review_model import SpendReview
from include.errors import InvalidRequest
from include.money import usd
from include.naming import platform

HISTORY_DAYS = 28
#: InfluxDB measurement of the day per stage and hotspot (bucket ``economics``).
INFLUX_MEASUREMENT = "aws_spend"
INFLUX_TAGS = ("stage", "hotspot")
TOTAL = "total"
#: An AWS anomaly with at least this total impact is critical; below, a warning.
ANOMALY_CRITICAL_USD = 100.0
#: The economics' anomaly rules; an excess under $5 (or 20 %) pages nobody.
RULES = anomalies.Rules()


@dataclass(frozen=True)
class SpendLine:
    """One Cost Explorer group of one day: a usage type of a service in a stage (and, for
    the GPU instances, a fleet)."""

    day: date
    stage: str
    service: str
    usage_type: str
    cost: Decimal
    quantity: float
    unit: str
    fleet: str = ""

    @property
    def hotspot(self) -> str:
        return hotspot_of(self.service, self.usage_type)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "day": self.day.isoformat(), "cost": str(self.cost)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpendLine:
        return cls(**{**data, "day": date.fromisoformat(data["day"]), "cost": Decimal(data["cost"])})


def parse_budgets(text: str | None) -> dict[str, dict[str, float]]:
    """Variable ``aws_daily_budgets``: ``{"<stage>": {"<hotspot>" or "total": USD}}``,
    checked before anything is read (a misspelt hotspot would never alert)."""
    try:
        budgets = json.loads(text) if text else {}
    except json.JSONDecodeError as error:
        raise InvalidRequest(f"Variable aws_daily_budgets is not JSON ({error})") from None
    known = [*BY_NAME, OTHER, TOTAL]
    for stage, limits in budgets.items() if isinstance(budgets, dict) else [("", None)]:
        if stage not in platform.STAGES or not isinstance(limits, dict):
            raise InvalidRequest(
                f"Variable aws_daily_budgets must map a stage ({', '.join(platform.STAGES)}) to "
                f'{{"<hotspot>": USD}}, not {stage!r}: {limits!r}'
            )
        for hotspot, amount in limits.items():
            if hotspot not in known or not isinstance(amount, int | float) or amount < 0:
                raise InvalidRequest(
                    f"Variable aws_daily_budgets[{stage!r}]: {hotspot!r}: {amount!r} is not a hotspot "
                    f"({', '.join(known)}) with a daily budget in USD"
                )
    return budgets


def _period(first: date, last: date) -> dict[str, str]:
    # Cost Explorer's TimePeriod: "The start date is inclusive ... the end date is exclusive"
    return {"Start": first.isoformat(), "End": (last + timedelta(days=1)).isoformat()}


def _stage_filter(stage: str, *more: dict) -> dict:
    tag = {"Tags": {"Key": platform.STAGE_TAG, "Values": [stage], "MatchOptions": ["EQUALS"]}}
    return {"And": [tag, *more]} if more else tag


def _request(first: date, last: date, filter_: dict, group_by: list[dict]) -> dict[str, Any]:
    return {
        "TimePeriod": _period(first, last),
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost", "UsageQuantity"],
        "Filter": filter_,
        "GroupBy": group_by,
    }


def usage_request(first: date, last: date, stage: str) -> dict[str, Any]:
    """Every day of [first, last] of ``stage`` by service and usage type."""
    by = [{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "USAGE_TYPE"}]
    return _request(first, last, _stage_filter(stage), by)


def fleet_request(day: date, stage: str) -> dict[str, Any]:
    """The day's EC2 instance usage of ``stage`` by usage type and fleet tag."""
    service = {"Dimensions": {"Key": "SERVICE", "Values": [EC2_COMPUTE]}}
    by = [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}, {"Type": "TAG", "Key": platform.FLEET_TAG}]
    return _request(day, day, _stage_filter(stage, service), by)


def _groups(pages: Iterable[Mapping[str, Any]]) -> Iterator[tuple[date, list[str], Decimal, float, str]]:
    """Each group of every page: its day, its keys, its cost, usage and usage unit."""
    for page in pages:
        for result in page.get("ResultsByTime", []):
            day = date.fromisoformat(result["TimePeriod"]["Start"])
            for group in result.get("Groups", []):
                metrics = group.get("Metrics", {})
                usage = metrics.get("UsageQuantity", {})
                cost = Decimal(metrics.get("UnblendedCost", {}).get("Amount", "0"))
                yield day, group["Keys"], cost, float(usage.get("Amount", 0)), usage.get("Unit", "")


def parse_usage(pages: Iterable[Mapping[str, Any]], stage: str) -> list[SpendLine]:
    return [SpendLine(day, stage, *keys, *amounts) for day, keys, *amounts in _groups(pages)]


def parse_fleets(pages: Iterable[Mapping[str, Any]], stage: str) -> list[SpendLine]:
    """The GPU instance lines split by fleet (a tag group key is ``fleet$<value>``, empty
    for usage without the tag)."""
    lines = [
        SpendLine(day, stage, EC2_COMPUTE, usage_type, *amounts, fleet=tag.partition("$")[2])
        for day, (usage_type, tag), *amounts in _groups(pages)
    ]
    return [line for line in lines if line.hotspot == "gpu_instances"]


def with_fleets(lines: list[SpendLine], fleet_lines: list[SpendLine], day: date) -> list[SpendLine]:
    """``day``'s GPU instance lines replaced by the same usage split by fleet (same total)."""
    if not fleet_lines:
        return lines
    kept = [line for line in lines if not (line.day == day and line.hotspot == "gpu_instances")]
    return kept + fleet_lines


def rows(day: date, lines: Iterable[SpendLine]) -> list[dict[str, Any]]:
    """The ``aws_spend_daily`` rows of ``day``."""
    return [
        {
            "day": day, "stage": line.stage, "service": line.service, "usage_type": line.usage_type,
            "hotspot": line.hotspot, "fleet": line.fleet, "cost_usd": line.cost,
            "usage_quantity": round(line.quantity, 6), "usage_unit": line.unit,
        }
        for line in lines
        if line.day == day
    ]  # fmt: skip


def daily_totals(lines: Iterable[SpendLine]) -> dict[tuple[str, str], dict[date, float]]:
    """(stage, hotspot or ``total``) -> day -> cost."""
    totals: dict[tuple[str, str], dict[date, float]] = defaultdict(lambda: defaultdict(float))
    for line in lines:
        for key in ((line.stage, line.hotspot), (line.stage, TOTAL)):
            totals[key][line.day] += float(line.cost)
    return totals


@dataclass(frozen=True)
class Finding:
    """One thing about the day's AWS spend worth an alert."""

    severity: str
    stage: str
    hotspot: str
    kind: str  # baseline, budget, aws-anomaly or aws-budget
    value: float
    threshold: float
    usage_type: str = ""
    fleet: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(**data)


def _top(lines: list[SpendLine], day: date, stage: str, hotspot: str) -> SpendLine | None:
    """The day's line of the hotspot that grew most against its own median (or cost most)."""
    today = [line for line in lines if (line.day, line.stage, line.hotspot) == (day, stage, hotspot)]
    if not today:
        return None

    def growth(line: SpendLine) -> float:
        past = sorted(
            float(o.cost) for o in lines
            if o.day < day and (o.stage, o.usage_type, o.fleet) == (stage, line.usage_type, line.fleet)
        )  # fmt: skip
        return float(line.cost) - (past[len(past) // 2] if past else 0.0)

    return max(today, key=growth)


def judge(
    day: date, lines: list[SpendLine], budgets: Mapping[str, Mapping[str, float]], rules: anomalies.Rules = RULES
) -> list[Finding]:
    """Each (stage, hotspot) of ``day`` against its budget and its baseline; one finding
    per hotspot at most (a budget overrun is the critical one and says the baseline too)."""
    findings = []
    totals = daily_totals(lines)
    # hotspots first: a stage's total above its baseline is news only when no hotspot explains it
    for (stage, hotspot), series in sorted(totals.items(), key=lambda kv: (kv[0][0], kv[0][1] == TOTAL, kv[0][1])):
        value = series.get(day, 0.0)
        history = {d: v for d, v in series.items() if d < day}
        anomaly = anomalies.judge(day, "cost", hotspot, value, history, rules)
        budget = budgets.get(stage, {}).get(hotspot)
        top = _top(lines, day, stage, hotspot) if hotspot != TOTAL else None
        where = {"usage_type": top.usage_type, "fleet": top.fleet} if top else {}
        if budget is not None and value > float(budget):
            said = f"baseline {anomaly.baseline:.2f} (z {anomaly.z})" if anomaly else ""
            findings.append(Finding("critical", stage, hotspot, "budget", value, float(budget), **where, detail=said))
        elif anomaly is not None and not (hotspot == TOTAL and any(f.stage == stage for f in findings)):
            findings.append(Finding(anomaly.severity, stage, hotspot, "baseline", value, anomaly.baseline, **where))
    return findings


def _root_hotspots(anomaly: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (hotspot_of(cause.get("Service", ""), cause.get("UsageType", "")), cause.get("UsageType", ""))
        for cause in anomaly.get("RootCauses", [])
    ]


def with_aws_anomalies(findings: list[Finding], aws: Iterable[Mapping[str, Any]], stage: str) -> list[Finding]:
    """AWS Cost Anomaly Detection's anomalies joined to ``findings``: one whose root cause
    is in a hotspot already found is said in that finding; any other is a finding of its
    own (routed to ``stage``: an anomaly names no stage)."""
    found = list(findings)
    for anomaly in aws:
        impact = anomaly.get("Impact", {})
        total_impact = float(impact.get("TotalImpact", impact.get("MaxImpact", 0.0)))
        said = f"AWS Cost Anomaly Detection: anomaly {anomaly['AnomalyId']}, impact ${total_impact:,.2f}"
        roots = _root_hotspots(anomaly) or [(OTHER, "")]
        matched = [i for i, f in enumerate(found) if f.hotspot in {h for h, _ in roots} and f.kind != "aws-budget"]
        if matched:
            i = matched[0]
            found[i] = Finding(**{**found[i].as_dict(), "detail": "; ".join(filter(None, [found[i].detail, said]))})
            continue
        hotspot, usage_type = roots[0]
        severity = "critical" if total_impact >= ANOMALY_CRITICAL_USD else "warning"
        expected = float(impact.get("TotalExpectedSpend", 0.0))
        actual = float(impact.get("TotalActualSpend", expected + total_impact))
        found.append(Finding(severity, stage, hotspot, "aws-anomaly", actual, expected, usage_type, detail=said))
    return found


def budget_findings(budgets: Iterable[Mapping[str, Any]], stage: str) -> list[Finding]:
    """AWS Budgets over their limit (critical) or forecast over it (warning)."""
    found = []
    for budget in budgets:
        limit = float(budget.get("BudgetLimit", {}).get("Amount", 0))
        spend = budget.get("CalculatedSpend", {})
        actual = float(spend.get("ActualSpend", {}).get("Amount", 0))
        forecast = float(spend.get("ForecastedSpend", {}).get("Amount", 0))
        if limit <= 0:
            continue
        name = budget["BudgetName"]
        if actual > limit:
            found.append(Finding("critical", stage, TOTAL, "aws-budget", actual, limit, detail=f"AWS budget {name}"))
        elif forecast > limit:
            said = f"AWS budget {name}: forecast {usd(forecast)} for the period"
            found.append(Finding("warning", stage, TOTAL, "aws-budget", forecast, limit, detail=said))
    return found


def alert(day: date, finding: Finding) -> Alert:
    """What one finding says: the hotspot and usage type, the likely cause and what to do."""
    label = label_of(finding.hotspot) if finding.hotspot != TOTAL else "total spend"
    titles = {
        "budget": f"AWS {label} over its daily budget in {finding.stage} on {day}",
        "baseline": f"AWS {label} above its baseline in {finding.stage} on {day}",
        "aws-anomaly": f"AWS Cost Anomaly Detection: {label} on {day}",
        "aws-budget": f"AWS budget over its limit ({finding.stage}) on {day}",
    }
    hotspot = BY_NAME.get(finding.hotspot)
    cause = f"Likely cause (seed 003): {hotspot.cause}. Runbook: {hotspot.runbook}." if hotspot else ""
    dimensions = {"stage": finding.stage, "hotspot": finding.hotspot}
    dimensions.update({k: v for k, v in (("usage_type", finding.usage_type), ("fleet", finding.fleet)) if v})
    return Alert(
        severity=finding.severity,
        title=titles[finding.kind],
        metric="cost_usd",
        value=round(finding.value, 2),
        threshold=round(finding.threshold, 2),
        threshold_label="budget" if finding.kind in ("budget", "aws-budget") else "baseline",
        dimensions=dimensions,
        detail=" ".join(filter(None, [finding.detail and finding.detail + ".", cause])) or None,
    )


def finding_line(day: date, finding: Finding) -> str:
    """One line for the run's outcome: the alert's subject, the figures, where it grew."""
    alert_ = alert(day, finding)
    where = ", ".join(f"{k} {v}" for k, v in (("usage type", finding.usage_type), ("fleet", finding.fleet)) if v)
    figures = f"{usd(finding.value)} against {alert_.threshold_label} {usd(finding.threshold)}"
    return "; ".join(filter(None, [f"{alert_.subject}: {figures}", where, finding.detail]))


def readable(day: date, lines: list[SpendLine]) -> list[str]:
    """The day per stage and hotspot, then each stage's total: the run's outcome lines."""
    totals = daily_totals(lines)
    said = [
        f"{stage:<11} {label_of(hotspot):<30} {usd(series.get(day, 0.0)):>12}"
        for (stage, hotspot), series in sorted(totals.items())
        if hotspot != TOTAL
    ]
    for stage in sorted({line.stage for line in lines}):
        said.append(f"{stage:<11} {'total':<30} {usd(totals[(stage, TOTAL)].get(day, 0.0)):>12}")
    return said


def week_review(this: pd.DataFrame, previous: pd.DataFrame) -> list[SpendReview]:
    """Where the AWS money went: each stage's hotspots over a week of ``aws_spend_daily``
    rows against the week before, biggest first."""
    reviews = []
    for (stage, hotspot), rows in this.groupby(["stage", "hotspot"]):
        before = previous[(previous["stage"] == stage) & (previous["hotspot"] == hotspot)]
        by_usage = rows.groupby("usage_type")["cost_usd"].sum()
        reviews.append(
            SpendReview(stage, hotspot, label_of(hotspot), Decimal(sum(rows["cost_usd"], Decimal(0))),
                        Decimal(sum(before["cost_usd"], Decimal(0))), str(by_usage.idxmax()))
        )  # fmt: skip
    return sorted(reviews, key=lambda r: (-r.cost_usd, r.stage, r.hotspot))


def influx_points(day: date, lines: list[SpendLine]) -> list:
    """``aws_spend`` per stage and hotspot (and the stage's total) of ``day``."""
    return [
        day_point(day, INFLUX_MEASUREMENT, dict(zip(INFLUX_TAGS, key, strict=True)), {"cost_usd": series.get(day, 0.0)})
        for key, series in sorted(daily_totals(lines).items())
    ]
