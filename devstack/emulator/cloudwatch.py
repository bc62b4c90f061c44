"""CloudWatch's percentile statistics, which moto answers with nothing (its statistics
stop at Sum, Average, Minimum, Maximum and SampleCount), and dimension sets that match in
any order.

AWS (CloudWatch statistics definitions): "Percentile (p) indicates the relative standing
of a value in a dataset. For example, p95 is the 95th percentile and means that 95
percent of the data within the period is lower than this value and 5 percent of the
data is higher than this value."

So: ``pNN`` (``p50``, ``p90``, ``p99.9``) over a period's raw values - moto keeps a
``Values``/``Counts`` datum as one sample per count - is the nearest-rank percentile:
the smallest value with at least NN percent of the samples at or below it. Datums sent as
``StatisticValues`` carry no samples and, as in AWS, give no percentile.

AWS (CloudWatch concepts, "Dimensions"): "CloudWatch treats each unique combination of
dimensions as a separate metric" - a combination, whatever order a publisher lists it in.
moto compares sorted dimension lists, but its ``Dimension.__lt__`` compares a value with a
name, so ``[Stage, FleetSlug]`` published and ``[FleetSlug, Stage]`` asked for did not
match; dimensions here sort by name, then value. And GetMetricStatistics: "CloudWatch treats
each unique combination of dimensions as a separate metric. If a specific combination of
dimensions was not published, you can't retrieve statistics for it. You must specify the
same dimensions that were used when the metrics were created." moto answers with every
datum that has the asked dimensions among others (a node agent's ``Stage+FleetSlug+BundleId``
datums counted again under ``Stage+FleetSlug``); here only the exact combination counts.
"""

from __future__ import annotations

import math
import re
from typing import Any

from moto.cloudwatch.models import CloudWatchBackend, Dimension, Statistics

PERCENTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?|100)$")

_original = Statistics.get_statistics_for_type
_original_statistics = CloudWatchBackend.get_metric_statistics


def percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _get_statistics_for_type(self: Statistics, stat: str) -> Any:
    match = PERCENTILE.match(stat)
    if match is None:
        return _original(self, stat)
    return percentile(self.metric_single_values_list, float(match.group(1)))


def _dimension_lt(self: Dimension, other: Dimension) -> bool:
    return (self.name or "", self.value or "") < (other.name or "", other.value or "")


def _exactly(dimensions: list[dict[str, str]] | None) -> Any:
    wanted = sorted((d["Name"], d.get("Value")) for d in dimensions or ())
    return lambda datum: sorted((d.name, d.value) for d in datum.dimensions) == wanted


def _get_metric_statistics(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> list[Statistics]:
    dimensions = kwargs["dimensions"] if "dimensions" in kwargs else args[6]
    same = _exactly(dimensions)
    answered = []
    for statistics in _original_statistics(self, *args, **kwargs):
        statistics.metric_data = [datum for datum in statistics.metric_data if same(datum)]
        if statistics.metric_data:
            answered.append(statistics)
    return answered


def install() -> None:
    Statistics.get_statistics_for_type = _get_statistics_for_type
    Dimension.__lt__ = _dimension_lt
    CloudWatchBackend.get_metric_statistics = _get_metric_statistics
