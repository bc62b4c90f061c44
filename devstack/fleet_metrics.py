"""A fleet's metric history, planted: what its nodes and the backend reported before the
stack started (the baselines, the week the review pack reads, a leak an hour old). Live
node metrics come only from the emulated nodes' real agents (tests/doubles/fleet_nodes.py);
what was reported before them can't be, so it is written here, through the agents' own
PutMetricData batching (:func:`gpu_worker.agent.publisher.put_batches`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gpu_worker.agent.publisher import put_batches
from include.naming.fleet import Fleet


def put_minutely(
    cloudwatch: Any, fleet: Fleet, series: Mapping[str, Sequence[float]], end: datetime, bundle_id: str | None = None
) -> None:
    """Each metric's values, one a minute, oldest first, the last at ``end``; with
    ``bundle_id``, as the nodes on that bundle publish them (``BundleId`` too)."""
    bundle = [{"Name": "BundleId", "Value": bundle_id}] if bundle_id else []
    put_batches(
        cloudwatch,
        [
            {
                "MetricName": name,
                "Dimensions": fleet.metric_dimensions + bundle,
                "Timestamp": end - timedelta(minutes=len(values) - 1 - i),
                "Value": value,
            }
            for name, values in series.items()
            for i, value in enumerate(values)
        ],
    )
