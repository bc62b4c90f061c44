"""Judging a rollout by the fleet's own metrics, the way progressive-delivery tools do
(Argo Rollouts' analysis: successful, failed, or inconclusive - which waits for a person).

At each checkpoint of an instance refresh, and after it ends, the run waits a bake window
and reads what the fleet reported in ``ComfyUI/Workers`` during it. Which comparison
decides (Kayenta's canary against the baseline running at the same time):

* while nodes on the **old bundle** still ran jobs in the window, the new bundle's nodes
  against them, over that same window (the agent publishes every figure by ``BundleId``
  too): a busy hour slows both alike, and a bad bundle on 1 node of 10 is not diluted;
* once every node is new (the end of the refresh), the whole fleet against a window of the
  same length that ended when the rollout began.

* **failed**: ``ErrorRate`` above its ceiling or more than a margin over the reference,
  the median job (``JobProcessingTime`` p50) more than a ratio over the reference's, or
  any ``LeaseExpiredCount`` in the fleet;
* **inconclusive**: fewer jobs (on the new bundle's nodes) than the minimum count;
* **not applicable**: a fleet at zero nodes with no jobs at all has nothing to judge;
* **success** otherwise.

The table shows all four readings (before the run, old bundle, new bundle, whole fleet)
and names the comparison that decided. The figures add up in CloudWatch itself, over every
job of every node read (the node agent publishes them so: :mod:`gpu_worker.metrics`):
``JobCount`` summed, ``ErrorRate``'s Average (one 0-or-100 sample per job: the share that
failed) and the ``p50`` of the ``JobProcessingTime`` distribution - never an average of
per-node medians. Plain Python: the task reads CloudWatch and hands the figures here.
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
STATISTICS = {"JobCount": "Sum", "ErrorRate": "Average", "JobProcessingTime": "p50", "LeaseExpiredCount": "Sum"}
#: how the table names the median job time
P50_ROW = "JobProcessingTime p50"

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
            values.get("JobProcessingTime"),
            values.get("LeaseExpiredCount"),
        )


def metric_queries(fleet: Fleet, start: datetime, end: datetime, bundle_id: str | None = None) -> list[dict[str, Any]]:
    """GetMetricData queries for one window: one period covering all of it (CloudWatch
    rounds the start down to the minute, hence the extra minute). With ``bundle_id``:
    only the nodes that run that bundle (the agent's ``Stage+FleetSlug+BundleId``)."""
    period = 60 * (math.ceil((end - start).total_seconds() / 60) + 1)
    dimensions = fleet.metric_dimensions + ([{"Name": "BundleId", "Value": bundle_id}] if bundle_id else [])
    return [
        {
            "Id": f"m{index}",
            "Label": name,
            "MetricStat": {
                "Metric": {
                    "Namespace": platform.WORKER_METRICS_NAMESPACE,
                    "MetricName": name,
                    "Dimensions": dimensions,
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
class Readings:
    """What one verdict reads: the whole fleet before the run and over the bake window,
    and, over the same bake window, the nodes on the new bundle and those still on the old."""

    before: Figures
    fleet: Figures
    new: Figures = Figures()
    old: Figures = Figures()


def queries(
    fleet: Fleet, began: datetime, window_start: datetime, bake_seconds: int, new_bundle: str, old_bundle: str | None
) -> dict[str, tuple[datetime, datetime, list[dict[str, Any]]]]:
    """Each reading of :class:`Readings`: its window and its GetMetricData queries. No
    old reading when the bundle does not change (there is no "old" to compare with)."""
    spans = windows(began, window_start, bake_seconds)
    selections = {"before": ("baseline", None), "fleet": ("window", None), "new": ("window", new_bundle)}
    if old_bundle and old_bundle != new_bundle:
        selections["old"] = ("window", old_bundle)
    return {
        name: (*spans[span], metric_queries(fleet, *spans[span], bundle_id=bundle))
        for name, (span, bundle) in selections.items()
    }


#: which comparison decided a verdict
CANARY = "the new bundle's nodes against the old bundle's, over the same window"
BEFORE_RUN = "the whole fleet against the window before the run"


@dataclass(frozen=True)
class Analysis:
    """One verdict: where it was taken, the figures, and one row per limit."""

    checkpoint: str
    verdict: str
    rows: tuple[tuple[str, ...], ...]
    reasons: tuple[str, ...]
    nodes: int
    compared: str = ""

    HEADER = ("metric", "before run", "old bundle", "new bundle", "whole fleet", "limit", "verdict")

    def table(self) -> str:
        table = format_table(self.HEADER, list(self.rows))
        return f"{table}\nJudged: {self.compared}." if self.compared else table

    def summary(self) -> str:
        """One sentence: the verdict and why."""
        why = "; ".join(self.reasons)
        return f"Analysis at {self.checkpoint} on {self.nodes} node(s): {self.verdict}" + (f" ({why})" if why else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "checkpoint": self.checkpoint,
            "verdict": self.verdict,
            "nodes": self.nodes,
            "compared": self.compared,
            "reasons": list(self.reasons),
            "rows": [dict(zip(self.HEADER, row, strict=True)) for row in self.rows],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Analysis:
        """What :meth:`as_dict` wrote (an XCom, an audit record)."""
        return cls(
            checkpoint=data["checkpoint"],
            verdict=data["verdict"],
            rows=tuple(tuple(row[column] for column in cls.HEADER) for row in data["rows"]),
            reasons=tuple(data["reasons"]),
            nodes=data["nodes"],
            compared=data.get("compared", ""),
        )


def _number(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{unit}".replace(".00", "")


def judge(readings: Readings, thresholds: Thresholds, *, checkpoint: str, nodes: int) -> Analysis:
    """The verdict on one bake window (see the module's docstring for the rules).

    While nodes on the old bundle still ran jobs in the window, the new bundle's nodes are
    judged against them (the canary against the baseline running at the same time: a busy
    hour slows both alike, and a bad bundle on one node in ten is not diluted by the nine);
    once every node is new, the whole fleet is judged against the window before the run."""
    canary = (readings.old.jobs or 0) > 0
    subject, reference = (readings.new, readings.old) if canary else (readings.fleet, readings.before)
    jobs = subject.jobs or 0
    if nodes == 0 and (readings.fleet.jobs or 0) == 0:
        return Analysis(
            checkpoint, NOT_APPLICABLE, (), ("the fleet is at 0 nodes and ran no jobs: nothing to judge",), nodes
        )
    enough = jobs >= thresholds.min_jobs
    rows, failures = [], []

    def row(
        metric: str, field: str, unit: str, limit: str, broken: bool, judged: bool = True, of: Figures = subject
    ) -> None:
        verdict = "not judged" if not judged else ("FAILED" if broken else "ok")
        seen = [_number(getattr(f, field), unit) for f in (readings.before, readings.old, readings.new, readings.fleet)]
        rows.append((metric, *seen, limit, verdict))
        if judged and broken:
            where = "on the new bundle's nodes " if canary and of is readings.new else ""
            failures.append(f"{metric} {where}{_number(getattr(of, field), unit)} broke its limit {limit}")

    row("JobCount", "jobs", "", f">= {thresholds.min_jobs}", not enough)
    failures.clear()  # too few jobs is inconclusive, not a failure

    error_limit = thresholds.error_rate_ceiling
    if reference.error_rate is not None:
        error_limit = min(error_limit, reference.error_rate + thresholds.error_rate_margin)
    row(
        "ErrorRate",
        "error_rate",
        "%",
        f"<= {_number(error_limit, '%')}",
        subject.error_rate is not None and subject.error_rate > error_limit,
        judged=enough,
    )
    p50_limit = None if reference.p50_seconds is None else reference.p50_seconds * thresholds.p50_ratio
    row(
        P50_ROW,
        "p50_seconds",
        " s",
        "-" if p50_limit is None else f"<= {_number(p50_limit, ' s')}",
        p50_limit is not None and subject.p50_seconds is not None and subject.p50_seconds > p50_limit,
        judged=enough,
    )
    # a lease that expired is a node that stopped mid-job: a failure at any volume. The
    # backend publishes it by fleet only (it knows workers, not bundles): the whole fleet's.
    row("LeaseExpiredCount", "leases_expired", "", "= 0", (readings.fleet.leases_expired or 0) > 0, of=readings.fleet)
    compared = CANARY if canary else BEFORE_RUN
    if failures:
        return Analysis(checkpoint, FAILED, tuple(rows), tuple(failures), nodes, compared)
    if not enough:
        whose = " on the new bundle's nodes" if canary else ""
        reason = f"{_number(jobs)} job(s){whose} in the window, fewer than the {thresholds.min_jobs} needed to judge"
        return Analysis(checkpoint, INCONCLUSIVE, tuple(rows), (reason,), nodes, compared)
    return Analysis(checkpoint, SUCCESS, tuple(rows), (), nodes, compared)
