"""One publish period of a node (a minute on a node): what it saw, as metric datums of the
contract (:mod:`gpu_worker.metrics`)."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gpu_worker.agent.comfyui import FinishedPrompt
from gpu_worker.agent.gpu import GpuReading

#: PutMetricData takes at most 150 distinct values per datum (the AWS API reference)
MAX_VALUES = 150


def distribution(samples: Iterable[float]) -> tuple[list[float], list[float]]:
    """Samples as PutMetricData's ``Values``/``Counts``: rounded to 3 significant digits,
    then coarser until at most :data:`MAX_VALUES` distinct values remain."""
    samples = list(samples)
    for digits in (3, 2, 1):
        counted = Counter(_significant(value, digits) for value in samples)
        if len(counted) <= MAX_VALUES:
            break
    values = sorted(counted)
    return values, [float(counted[v]) for v in values]


def _significant(value: float, digits: int) -> float:
    return float(f"{value:.{digits}g}")


@dataclass
class Period:
    """What the node did between two publishes."""

    started_at: float
    prompts: list[FinishedPrompt] = field(default_factory=list)
    gpu: list[GpuReading] = field(default_factory=list)
    #: whether any prompt ran or waited during the period (seen on ComfyUI's queue)
    busy: bool = False
    #: Spot interruption notices the node received in the period (one, in its life)
    spot_notices: int = 0
    #: a drain that ended in the period: (seconds waited, prompts left at its deadline)
    drained: tuple[float, int] | None = None

    def datums(self, dimension_sets: Sequence[Sequence[dict[str, str]]]) -> list[dict[str, Any]]:
        """The period's datums, once for each dimension set. ``JobCount`` always (0 on an
        idle minute: a node that reports nothing is "no data", never "idle")."""
        timestamp = datetime.fromtimestamp(self.started_at, UTC)
        failed = sum(p.failed for p in self.prompts)
        durations = [p.seconds for p in self.prompts if p.seconds is not None]
        figures: list[dict[str, Any]] = [{"MetricName": "JobCount", "Value": float(len(self.prompts)), "Unit": "Count"}]
        if self.prompts:
            figures.append(
                {
                    "MetricName": "ErrorRate",
                    "Values": [v for v, n in ((0.0, len(self.prompts) - failed), (100.0, failed)) if n],
                    "Counts": [float(n) for n in (len(self.prompts) - failed, failed) if n],
                    "Unit": "Percent",
                }
            )
        if durations:
            values, counts = distribution(durations)
            figures.append({"MetricName": "JobProcessingTime", "Values": values, "Counts": counts, "Unit": "Seconds"})
            figures.append(
                {"MetricName": "JobProcessingP50", "Value": float(statistics.median(durations)), "Unit": "Seconds"}
            )
        for name, read in (
            ("GPUUtilization", lambda g: g.utilization_percent),
            ("GPUMemoryUtilization", lambda g: g.memory_percent),
        ):
            if self.gpu:
                values, counts = distribution(read(g) for g in self.gpu)
                figures.append({"MetricName": name, "Values": values, "Counts": counts, "Unit": "Percent"})
        if self.spot_notices:
            figures.append({"MetricName": "SpotInterruptionCount", "Value": float(self.spot_notices), "Unit": "Count"})
        if self.drained is not None:
            seconds, abandoned = self.drained
            figures.append({"MetricName": "DrainSeconds", "Value": float(seconds), "Unit": "Seconds"})
            figures.append({"MetricName": "DrainAbandonedJobs", "Value": float(abandoned), "Unit": "Count"})
        return [
            {**figure, "Timestamp": timestamp, "Dimensions": list(dimensions)}
            for dimensions in dimension_sets
            for figure in figures
        ]
