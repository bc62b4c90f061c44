"""Judging a rollout by the fleet's own metrics, the way progressive-delivery tools do
(Argo Rollouts' analysis: successful, failed, or inconclusive - which waits for a person).

At each checkpoint of an instance refresh, and after it ends, the run waits a bake window
and compares what the fleet reported in ``ComfyUI/Workers`` during it with a baseline
window of the same length that ended when the rollout began:

* **failed**: ``ErrorRate`` above its ceiling or more than a margin over the baseline,
  ``JobProcessingP50`` more than a ratio over the baseline, or any ``LeaseExpiredCount``;
* **inconclusive**: fewer jobs than the minimum count, too few to judge the first two;
* **not applicable**: a fleet at zero nodes with no jobs at all has nothing to judge;
* **success** otherwise.

``JobCount`` (the jobs a node finished, summed) is the one metric this adds to ADR-0005's
list: the error rate of three jobs judges nothing, and no other metric counts jobs.
Plain Python: the task reads CloudWatch and hands the figures here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from include.errors import InvalidRequest
from include.naming import platform
from include.naming.fleet import Fleet
from include.tables import format_table

#: metric -> the statistic the analysis reads over a window
STATISTICS = {"JobCount": "Sum", "ErrorRate": "Average", "JobProcessingP50": "Average", "LeaseExpiredCount": "Sum"}

SUCCESS, FAILED, INCONCLUSIVE, NOT_APPLICABLE = "success", "failed", "inconclusive", "not applicable"


@dataclass(frozen=True)
class Thresholds:
    """The limits a bake window is judged by; the defaults are the DAG params' defaults."""

    bake_window_seconds: int = 600
    error_rate_ceiling: float = 5.0
    error_rate_margin: float = 2.0
    p50_ratio: float = 1.5
    min_jobs: int = 20

    LIMITS = {
        "bake_window_seconds": (60 // 4, 6 * 3600),
        "error_rate_ceiling": (0.0, 100.0),
        "error_rate_margin": (0.0, 100.0),
        "p50_ratio": (1.0, 100.0),
        "min_jobs": (0, 1_000_000),
    }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Thresholds:
        values = {}
        for name, default in asdict(cls()).items():
            value = params.get(name, default)
            low, high = cls.LIMITS[name]
            whole = isinstance(default, int)
            if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
                raise InvalidRequest(f"{name} must be a {'whole ' if whole else ''}number, got {value!r}")
            if not low <= value <= high:
                raise InvalidRequest(f"{name} must be from {low} to {high}, got {value!r}")
            values[name] = value
        return cls(**values)

    def checkpoint_delay_seconds(self) -> int:
        """How long AWS pauses at a checkpoint: the bake window and half of it again (at
        most 5 minutes), the time the run has to read the metrics and stop the refresh
        before AWS goes on by itself (AWS has no call to go on sooner)."""
        return self.bake_window_seconds + min(300, max(10, self.bake_window_seconds // 2))


@dataclass(frozen=True)
class Figures:
    """What a fleet reported over one window; None where nothing was reported."""

    jobs: float | None = None
    error_rate: float | None = None
    p50_seconds: float | None = None
    leases_expired: float | None = None

    @classmethod
    def of(cls, values: dict[str, float | None]) -> Figures:
        return cls(
            values.get("JobCount"),
            values.get("ErrorRate"),
            values.get("JobProcessingP50"),
            values.get("LeaseExpiredCount"),
        )


def metric_queries(fleet: Fleet, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """GetMetricData queries for one window: one period covering all of it (CloudWatch
    rounds the start down to the minute, hence the extra minute)."""
    period = 60 * (math.ceil((end - start).total_seconds() / 60) + 1)
    return [
        {
            "Id": f"m{index}",
            "Label": name,
            "MetricStat": {
                "Metric": {
                    "Namespace": platform.WORKER_METRICS_NAMESPACE,
                    "MetricName": name,
                    "Dimensions": fleet.metric_dimensions,
                },
                "Period": period,
                "Stat": statistic,
            },
        }
        for index, (name, statistic) in enumerate(STATISTICS.items())
    ]


def figures_of(results: list[dict[str, Any]]) -> Figures:
    """GetMetricData's MetricDataResults (for :func:`metric_queries`) -> Figures."""
    names = {f"m{index}": name for index, name in enumerate(STATISTICS)}
    return Figures.of({names[r["Id"]]: (r["Values"][0] if r.get("Values") else None) for r in results})


def windows(rollout_began: datetime, window_start: datetime, bake_seconds: int) -> dict[str, tuple[datetime, datetime]]:
    """The baseline (the same length, ended as the rollout began) and the bake window."""
    length = timedelta(seconds=bake_seconds)
    return {"baseline": (rollout_began - length, rollout_began), "window": (window_start, window_start + length)}


@dataclass(frozen=True)
class Analysis:
    """One verdict: where it was taken, the figures, and one row per limit."""

    checkpoint: str
    verdict: str
    rows: tuple[tuple[str, str, str, str, str], ...]
    reasons: tuple[str, ...]
    nodes: int

    HEADER = ("metric", "baseline", "window", "limit", "verdict")

    def table(self) -> str:
        return format_table(self.HEADER, list(self.rows))

    def summary(self) -> str:
        """One sentence: the verdict and why."""
        why = "; ".join(self.reasons)
        return f"Analysis at {self.checkpoint} on {self.nodes} node(s): {self.verdict}" + (f" ({why})" if why else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "verdict": self.verdict,
            "nodes": self.nodes,
            "reasons": list(self.reasons),
            "rows": [dict(zip(self.HEADER, row, strict=True)) for row in self.rows],
        }


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}".replace(".00", "")


def judge(baseline: Figures, window: Figures, thresholds: Thresholds, *, checkpoint: str, nodes: int) -> Analysis:
    """The verdict on one bake window (see the module's docstring for the rules)."""
    jobs = window.jobs or 0
    if nodes == 0 and jobs == 0:
        return Analysis(
            checkpoint, NOT_APPLICABLE, (), ("the fleet is at 0 nodes and ran no jobs: nothing to judge",), nodes
        )
    enough = jobs >= thresholds.min_jobs
    rows, failures = [], []

    def row(metric: str, base: str, seen: str, limit: str, broken: bool, judged: bool = True) -> None:
        verdict = "not judged" if not judged else ("FAILED" if broken else "ok")
        rows.append((metric, base, seen, limit, verdict))
        if judged and broken:
            failures.append(f"{metric} {seen} broke its limit {limit}")

    row("JobCount", _number(baseline.jobs), _number(window.jobs), f">= {thresholds.min_jobs}", not enough)
    failures.clear()  # too few jobs is inconclusive, not a failure

    error_limit = thresholds.error_rate_ceiling
    if baseline.error_rate is not None:
        error_limit = min(error_limit, baseline.error_rate + thresholds.error_rate_margin)
    row(
        "ErrorRate",
        _number(baseline.error_rate, "%"),
        _number(window.error_rate, "%"),
        f"<= {_number(error_limit, '%')}",
        window.error_rate is not None and window.error_rate > error_limit,
        judged=enough,
    )
    p50_limit = None if baseline.p50_seconds is None else baseline.p50_seconds * thresholds.p50_ratio
    row(
        "JobProcessingP50",
        _number(baseline.p50_seconds, " s"),
        _number(window.p50_seconds, " s"),
        "-" if p50_limit is None else f"<= {_number(p50_limit, ' s')}",
        p50_limit is not None and window.p50_seconds is not None and window.p50_seconds > p50_limit,
        judged=enough,
    )
    # a lease that expired is a node that stopped mid-job: a failure at any volume
    row(
        "LeaseExpiredCount",
        _number(baseline.leases_expired),
        _number(window.leases_expired),
        "= 0",
        (window.leases_expired or 0) > 0,
    )
    if failures:
        return Analysis(checkpoint, FAILED, tuple(rows), tuple(failures), nodes)
    if not enough:
        reason = f"{_number(jobs)} job(s) in the window, fewer than the {thresholds.min_jobs} needed to judge"
        return Analysis(checkpoint, INCONCLUSIVE, tuple(rows), (reason,), nodes)
    return Analysis(checkpoint, SUCCESS, tuple(rows), (), nodes)
