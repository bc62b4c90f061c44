"""CloudWatch percentiles and dimension sets in the emulator (devstack/emulator/cloudwatch.py).

AWS (CloudWatch statistics definitions): "Percentile (p) indicates the relative standing
of a value in a dataset. For example, p95 is the 95th percentile and means that 95
percent of the data within the period is lower than this value and 5 percent of the
data is higher than this value." And: "CloudWatch treats each unique combination of
dimensions as a separate metric."
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.emulator.cloudwatch import percentile

DIMENSIONS = [{"Name": "Stage", "Value": "staging"}, {"Name": "FleetSlug", "Value": "gpu-default"}]


def _read(aws, statistics: list[str]) -> dict[str, list[float]]:
    now = datetime.now(UTC)
    results = aws("cloudwatch").get_metric_data(
        MetricDataQueries=[
            {
                "Id": f"q{i}",
                "Label": statistic,
                "MetricStat": {
                    "Metric": {
                        "Namespace": "ComfyUI/Workers",
                        "MetricName": "JobProcessingTime",
                        "Dimensions": DIMENSIONS,
                    },
                    "Period": 600,
                    "Stat": statistic,
                },
            }
            for i, statistic in enumerate(statistics)
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=1),
    )
    return {r["Label"]: r["Values"] for r in results["MetricDataResults"]}


def test_percentiles_are_computed_over_every_sample_of_every_node(aws):
    cloudwatch = aws("cloudwatch")
    minute = datetime.now(UTC) - timedelta(minutes=2)
    for values, counts in (([4.0, 5.0], [10, 8]), ([30.0], [2])):  # two nodes' distributions
        cloudwatch.put_metric_data(
            Namespace="ComfyUI/Workers",
            MetricData=[
                {
                    "MetricName": "JobProcessingTime",
                    "Dimensions": DIMENSIONS,
                    "Timestamp": minute,
                    "Values": values,
                    "Counts": counts,
                    "Unit": "Seconds",
                }
            ],
        )

    read = _read(aws, ["p50", "p90", "p95", "p99.9", "Average", "SampleCount"])

    # 20 samples: 10 at 4 s, 8 at 5 s, 2 at 30 s
    assert (read["p50"], read["p90"], read["p95"], read["p99.9"]) == ([4.0], [5.0], [30.0], [30.0])
    assert read["Average"] == [pytest.approx((40 + 40 + 60) / 20)]
    assert read["SampleCount"] == [20.0]


def test_the_nearest_rank_follows_the_definition():
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 95) == 95.0  # 95 percent at or below it
    assert percentile(samples, 50) == 50.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_a_dimension_set_matches_in_any_order_and_only_whole(aws):
    cloudwatch = aws("cloudwatch")
    minute = datetime.now(UTC) - timedelta(minutes=2)
    published = [*reversed(DIMENSIONS), {"Name": "BundleId", "Value": "b1"}]
    for dimensions in (list(reversed(DIMENSIONS)), published):
        cloudwatch.put_metric_data(
            Namespace="ComfyUI/Workers",
            MetricData=[
                {"MetricName": "JobProcessingTime", "Dimensions": dimensions, "Timestamp": minute, "Value": 3.0}
            ],
        )

    assert _read(aws, ["SampleCount"]) == {"SampleCount": [1.0]}  # Stage+FleetSlug only, asked in the other order


def test_statistics_are_of_the_exact_dimension_combination_asked_for(aws):
    cloudwatch = aws("cloudwatch")
    minute = datetime.now(UTC) - timedelta(minutes=2)
    for dimensions in (DIMENSIONS, [*DIMENSIONS, {"Name": "BundleId", "Value": "b1"}]):  # what a node agent sends
        cloudwatch.put_metric_data(
            Namespace="ComfyUI/Workers",
            MetricData=[{"MetricName": "JobCount", "Dimensions": dimensions, "Timestamp": minute, "Value": 3.0}],
        )

    def total(dimensions):
        points = cloudwatch.get_metric_statistics(
            Namespace="ComfyUI/Workers",
            MetricName="JobCount",
            Dimensions=dimensions,
            StartTime=minute - timedelta(minutes=1),
            EndTime=minute + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    assert total(DIMENSIONS) == 3.0  # not 6: the BundleId combination is another metric
    assert total([{"Name": "Stage", "Value": "staging"}]) == 0  # never published alone
