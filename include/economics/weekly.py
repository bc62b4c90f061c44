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

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics import margin, warehouse

ZERO = Decimal(0)
WEEK_TABLES = (
    "ai_usage_daily",
    "ai_feature_daily",
    "ai_model_daily",
    "ai_plan_daily",
    "ai_margin_daily",
    "ai_anomalies",
    "ai_quality_daily",
    "ai_fleet_daily",
)
#: A published day always has its rows here (the margin's "all" row, even on a day without requests).
COVERAGE_TABLE = "ai_margin_daily"
_WEEK = re.compile(r"(\d{4})-W(\d{2})")


class InvalidWeek(ValueError):
    """A week param that is not a real ISO week, or one that is not over yet."""


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """``2026-W44`` -> IsoWeek; a clear error for anything else (W53 only where it exists)."""
        match = _WEEK.fullmatch(text.strip()) if isinstance(text, str) else None
        if not match:
            raise InvalidWeek(f"week {text!r} is not an ISO week like 2026-W44")
        year, week = int(match[1]), int(match[2])
        weeks_in_year = date(year, 12, 28).isocalendar().week  # 28 December is always in the last week
        if not 1 <= week <= weeks_in_year:
            raise InvalidWeek(f"week {text!r} does not exist: {year} has weeks W01 to W{weeks_in_year}")
        return cls(year, week)

    @classmethod
    def containing(cls, day: date) -> IsoWeek:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @classmethod
    def last_full_week_before(cls, day: date) -> IsoWeek:
        """The latest ISO week that ended before ``day`` (a Monday run reviews the week just over)."""
        return cls.containing(day).previous()

    @property
    def first_day(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=6)

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=k) for k in range(7)]

    def previous(self) -> IsoWeek:
        return IsoWeek.containing(self.first_day - timedelta(days=7))

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


@dataclass(frozen=True)
class Coverage:
    week: IsoWeek
    published: tuple[date, ...]

    @property
    def missing(self) -> tuple[date, ...]:
        return tuple(day for day in self.week.days() if day not in self.published)

    @property
    def complete(self) -> bool:
        return not self.missing

    def sentence(self) -> str:
        if self.complete:
            return f"All 7 days of {self.week} are in the warehouse."
        days = ", ".join(f"{d:%a} {d.isoformat()}" for d in self.missing)
        return (
            f"Only {len(self.published)} of 7 days of {self.week} are in the warehouse: {days} "
            f"{'is' if len(self.missing) == 1 else 'are'} missing, and the week's totals leave "
            f"{'it' if len(self.missing) == 1 else 'them'} out."
        )


@dataclass(frozen=True)
class WeekTables:
    """What the warehouse holds for one week."""

    week: IsoWeek
    frames: dict[str, pd.DataFrame]
    #: distinct users over the week: "all", and per feature and per plan
    users: dict[str, int]
    users_by_feature: dict[str, int]
    users_by_plan: dict[str, int]

    @property
    def coverage(self) -> Coverage:
        return Coverage(self.week, tuple(sorted(set(self.frames[COVERAGE_TABLE]["day"]))))


def coverage(engine: Engine, week: IsoWeek) -> Coverage:
    """Which days of ``week`` are published, reading only :data:`COVERAGE_TABLE`."""
    days = warehouse.read_days(engine, COVERAGE_TABLE, week.first_day, week.last_day)["day"]
    return Coverage(week, tuple(sorted(set(days))))


def _distinct_users(engine: Engine, first: date, last: date, key: str | None) -> dict[str, int]:
    table = warehouse.ai_cost_daily
    if not sa.inspect(engine).has_table(table.name):
        return {}
    users = sa.func.count(sa.distinct(table.c.user_id))
    in_week = sa.and_(table.c.day >= first, table.c.day <= last)
    if key is None:
        query = sa.select(sa.literal("all"), users).where(in_week)
    else:
        query = sa.select(table.c[key], users).where(in_week).group_by(table.c[key])
    with engine.connect() as connection:
        return {str(name): int(count) for name, count in connection.execute(query) if count}


def load_week(engine: Engine, week: IsoWeek) -> WeekTables:
    """The week's rows of every table the review reads, and its distinct users (in SQL)."""
    first, last = week.first_day, week.last_day
    return WeekTables(
        week=week,
        frames={name: warehouse.read_days(engine, name, first, last) for name in WEEK_TABLES},
        users=_distinct_users(engine, first, last, None),
        users_by_feature=_distinct_users(engine, first, last, "feature_name"),
        users_by_plan=_distinct_users(engine, first, last, "plan"),
    )


# --- the review ---------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    """One headline figure of the week and of the week before."""

    key: str
    label: str
    unit: str  # usd, count, pct, ratio, ms
    value: float | Decimal | None
    previous: float | Decimal | None
    higher_is_better: bool

    @property
    def change(self) -> float | None:
        """Percent change; for percentages and rates, the change in percentage points."""
        if self.value is None or self.previous is None:
            return None
        if self.unit in ("pct", "ratio"):
            scale = 100 if self.unit == "ratio" else 1
            return round(float(self.value - self.previous) * scale, 2)
        if not self.previous:
            return None
        return round(float((self.value - self.previous) / abs(self.previous)) * 100, 1)

    @property
    def change_unit(self) -> str:
        return "pp" if self.unit in ("pct", "ratio") else "%"

    @property
    def verdict(self) -> str:
        """better / worse / flat, for colouring the change."""
        change = self.change
        if change is None or abs(change) < 0.05:
            return "flat"
        return "better" if (change > 0) == self.higher_is_better else "worse"


@dataclass(frozen=True)
class MixRow:
    model: str
    requests: int
    cost_usd: Decimal
    request_share: float
    cost_share: float
    previous_cost_share: float | None

    @property
    def cost_shift_pp(self) -> float | None:
        return None if self.previous_cost_share is None else round((self.cost_share - self.previous_cost_share), 2)


@dataclass(frozen=True)
class CostRow:
    """A feature or a plan over the week."""

    name: str
    requests: int
    cost_usd: Decimal
    users: int | None
    previous_cost_per_request: Decimal | None
    revenue_usd: Decimal | None = None
    margin_usd: Decimal | None = None
    margin_pct: Decimal | None = None

    @property
    def cost_per_request(self) -> Decimal | None:
        return _per_request(self.cost_usd, self.requests)

    @property
    def cost_per_user(self) -> Decimal | None:
        return (self.cost_usd / self.users).quantize(Decimal("0.0001")) if self.users else None


REGRESSION_LABELS = {"cost_per_request": "cost per request", "failure_rate": "failure rate", "p95_ms": "p95 latency"}


@dataclass(frozen=True)
class Regression:
    dimension: str  # feature:<name> / model:<name>
    metric: str  # cost_per_request / failure_rate / p95_ms
    previous: float
    current: float

    @property
    def label(self) -> str:
        return REGRESSION_LABELS[self.metric]

    @property
    def change(self) -> str:
        if self.metric == "failure_rate":
            return f"+{(self.current - self.previous) * 100:.2f} pp"
        return f"+{(self.current / self.previous - 1) * 100:.1f}%"


@dataclass(frozen=True)
class AnomalyReview:
    signal: str
    dimension: str
    severity: str
    days: tuple[date, ...]
    peak_value: Decimal
    baseline: Decimal
    open_at_week_end: bool

    @property
    def status(self) -> str:
        persisted = f"persisted {len(self.days)} days" if len(self.days) > 1 else "one day"
        return f"{persisted}, still open at week end" if self.open_at_week_end else persisted


@dataclass(frozen=True)
class FleetReview:
    stage: str
    fleet: str
    gpu_hours: float | None
    cost_usd: Decimal
    cost_source: str
    #: CloudWatch ``ComfyUI/Workers`` over the week (None when the fleet published nothing)
    queue_depth_max: float | None = None
    queue_depth_avg: float | None = None
    active_workers_avg: float | None = None
    active_workers_max: float | None = None
    error_rate_avg: float | None = None
    spot_interruptions: int | None = None

    @property
    def cost_per_gpu_hour(self) -> Decimal | None:
        return (self.cost_usd / Decimal(str(self.gpu_hours))).quantize(Decimal("0.0001")) if self.gpu_hours else None


@dataclass(frozen=True)
class QualityDay:
    day: date
    published: bool
    checks: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class QualityFinding:
    expectation: str
    severity: str
    days: int
    failed_rows: int


@dataclass(frozen=True)
class Action:
    severity: str  # high / medium / low
    text: str


@dataclass(frozen=True)
class Rules:
    """Thresholds of the regression and action rules (Variable ``weekly_review_rules``)."""

    min_requests: int = 200  # both weeks, for a dimension to be judged
    cost_per_request_pct: float = 15.0
    failure_rate_pp: float = 1.0
    p95_pct: float = 20.0
    margin_floor_pct: float = 20.0
    spot_interruptions: int = 3
    fleet_error_rate_pct: float = 5.0
    recurring_warning_days: int = 3
    mix_shift_pp: float = 10.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Rules:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown weekly review rule(s): {', '.join(sorted(unknown))}")
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in values.items()})


@dataclass(frozen=True)
class Review:
    week: IsoWeek
    coverage: Coverage
    previous_coverage: Coverage
    headline: list[Metric]
    daily: pd.DataFrame  # day, ai_cost_usd, infra_cost_usd, revenue_usd, margin_usd, requests
    model_mix: list[MixRow]
    features: list[CostRow]
    plans: list[CostRow]
    regressions: list[Regression]
    anomalies: list[AnomalyReview]
    fleets: list[FleetReview]
    fleet_days: pd.DataFrame  # day, fleet, gpu_hours
    quality_days: list[QualityDay]
    quality_findings: list[QualityFinding]
    actions: list[Action] = field(default_factory=list)

    def metric(self, key: str) -> Metric:
        return next(m for m in self.headline if m.key == key)


def _per_request(cost: Decimal, requests: int) -> Decimal | None:
    return (cost / requests).quantize(Decimal("0.000001")) if requests else None


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
        )
        for model, (r, c) in now.items()
    ]
    return sorted(rows, key=lambda row: row.cost_usd, reverse=True)


def _cost_per_request(sums: Mapping[str, tuple[int, Decimal]], name: str) -> Decimal | None:
    requests, cost = sums.get(name, (0, ZERO))
    return _per_request(cost, requests)


def _features(this: WeekTables, previous: WeekTables) -> list[CostRow]:
    now = _sums(this.frames["ai_feature_daily"], "feature_name")
    before = _sums(previous.frames["ai_feature_daily"], "feature_name")
    rows = [
        CostRow(name, r, c, this.users_by_feature.get(name), _cost_per_request(before, name))
        for name, (r, c) in now.items()
    ]
    return sorted(rows, key=lambda row: row.cost_usd, reverse=True)


def _plans(this: WeekTables, previous: WeekTables) -> list[CostRow]:
    usage = _sums(this.frames["ai_plan_daily"], "plan")
    before = _sums(previous.frames["ai_plan_daily"], "plan")
    margins = this.frames["ai_margin_daily"]
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
            found += [
                Regression(f"{dimension}:{name}", metric, a[metric], b[metric]) for metric, worse in checks if worse
            ]
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


def _actions(review: Review, rules: Rules) -> list[Action]:
    actions = []
    if review.coverage.missing:
        days = ", ".join(d.isoformat() for d in review.coverage.missing)
        actions.append(
            Action(
                "high",
                f"Re-run ai_economics_daily for {days} (a failed gate or a run that never ran): "
                "this week's totals leave those days out.",
            )
        )
    for plan in review.plans:
        if plan.margin_pct is not None and plan.margin_pct < Decimal(str(rules.margin_floor_pct)):
            actions.append(
                Action(
                    "high",
                    f"Plan {plan.name} ran at a {plan.margin_pct}% margin, under the "
                    f"{rules.margin_floor_pct:g}% floor: review its price or its AI usage.",
                )
            )
    for regression in review.regressions:
        actions.append(
            Action(
                "medium",
                f"Investigate the {regression.label} of {regression.dimension}: {regression.change} week over week.",
            )
        )
    for anomaly in review.anomalies:
        if len(anomaly.days) > 1 or anomaly.open_at_week_end:
            actions.append(
                Action(
                    "high" if anomaly.severity == "critical" else "medium",
                    f"The {anomaly.signal} anomaly on {anomaly.dimension} {anomaly.status}: find its cause "
                    "(release, retry loop, new customer) or raise its baseline.",
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


def build_review(
    this: WeekTables,
    previous: WeekTables,
    fleet_metrics: Mapping[str, Mapping[str, float | None]] | None = None,
    rules: Rules = Rules(),
) -> Review:
    """The whole review of ``this`` week against ``previous``.

    :param fleet_metrics: ``"<stage>/<fleet>"`` -> the week's CloudWatch figures
        (:func:`fleet_week_figures`), for the fleets section.
    """
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
        fleet_days=fleet_days,
        quality_days=quality_days,
        quality_findings=findings,
    )
    review.actions.extend(_actions(review, rules))
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
