"""The weekly review's figures as values: headline metrics, mix, cost rows, regressions,
anomalies, fleets, data quality, actions, the rules that judge them, and the review."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import pandas as pd

from include.devnodes.usage import DevNodeCost
from include.economics.calendar import IsoWeek
from include.economics.week_reads import Coverage


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
    #: the week before's cost: what a margin drop's model driver is read from
    previous_cost_usd: Decimal | None = None

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
    #: the week before's cost and revenue: what a big move's driver is read from
    previous_cost_usd: Decimal | None = None
    previous_revenue_usd: Decimal | None = None

    @property
    def cost_per_request(self) -> Decimal | None:
        return per_request(self.cost_usd, self.requests)

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
    #: the release the regression started with (include.economics.releases), if one did
    release: str | None = None

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
    #: the release the change started with, as the daily job found it
    release: str | None = None

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
    revenue_drop_pct: float = 15.0  # revenue down this much week over week: an action with its driver
    margin_drop_pct: float = 15.0  # the margin in USD, likewise

    @classmethod
    def from_mapping(cls, values: Mapping[str, object]) -> Rules:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown weekly review rule(s): {', '.join(sorted(unknown))}")
        return cls(**{k: type(getattr(cls(), k))(v) for k, v in values.items()})


@dataclass(frozen=True)
class BillReview:
    """One provider's week: what it billed against our cost of the same models."""

    provider: str
    billed_usd: Decimal
    our_usd: Decimal
    drift_pct: float | None
    drifts: int  # model-days over the drift threshold
    unpriced_usd: Decimal  # billed for models the catalogue does not price
    awaiting_days: int  # days its bill was not out yet

    def sentence(self) -> str:
        drift = "" if self.drift_pct is None else f" ({self.drift_pct:+.1f}%)"
        said = f"{self.provider}: billed {self.billed_usd} USD, our cost {self.our_usd} USD{drift}"
        said += f"; {self.drifts} model-day(s) drifting" if self.drifts else "; no drift"
        if self.unpriced_usd:
            said += f"; {self.unpriced_usd} USD unpriced spend"
        if self.awaiting_days:
            said += f"; {self.awaiting_days} day(s) not billed yet"
        return said


@dataclass(frozen=True)
class SpendReview:
    """One stage's week of AWS spend in one hotspot (aws_spend_daily), against the week before."""

    stage: str
    hotspot: str
    label: str
    cost_usd: Decimal
    previous_usd: Decimal
    top_usage_type: str  # the usage type that cost most this week

    @property
    def change_pct(self) -> float | None:
        return (
            round(float((self.cost_usd - self.previous_usd) / self.previous_usd * 100), 1)
            if self.previous_usd
            else None
        )


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
    dev_nodes: list[DevNodeCost]  # the week's hours and cost of each dev node
    quality_days: list[QualityDay]
    quality_findings: list[QualityFinding]
    actions: list[Action] = field(default_factory=list)
    #: the providers' bills against our cost (ai_billing_import), one per provider
    bills: list[BillReview] = field(default_factory=list)
    #: where the AWS money went (aws_spend_daily), per stage and hotspot, biggest first
    aws_spend: list[SpendReview] = field(default_factory=list)

    def metric(self, key: str) -> Metric:
        return next(m for m in self.headline if m.key == key)


def per_request(cost: Decimal, requests: int) -> Decimal | None:
    return (cost / requests).quantize(Decimal("0.000001")) if requests else None
