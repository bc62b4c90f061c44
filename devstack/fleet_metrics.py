"""What a fleet's workers report to CloudWatch each minute (ADR-0005: namespace
``ComfyUI/Workers``, dimensions ``FleetSlug`` and ``Stage``), planted for the demo and
the tests the way the node agent puts it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from include.naming import platform
from include.naming.fleet import Fleet

#: PutMetricData takes at most this many datapoints per call
BATCH = 500


def put_minutely(cloudwatch: Any, fleet: Fleet, series: Mapping[str, Sequence[float]], end: datetime) -> None:
    """Each metric's values, one a minute, oldest first, the last at ``end``."""
    data = [
        {
            "MetricName": name,
            "Dimensions": fleet.metric_dimensions,
            "Timestamp": end - timedelta(minutes=len(values) - 1 - i),
            "Value": value,
        }
        for name, values in series.items()
        for i, value in enumerate(values)
    ]
    for start in range(0, len(data), BATCH):
        cloudwatch.put_metric_data(Namespace=platform.WORKER_METRICS_NAMESPACE, MetricData=data[start : start + BATCH])
