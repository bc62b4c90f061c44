import json
import urllib.request
from datetime import UTC, date, datetime
from decimal import Decimal

from bp_aws.hooks.costs import CostExplorerHook, FleetMetricsHook

DAY = date(2026, 11, 5)


def test_cost_explorer_reads_the_day_grouped_by_fleet(aws_http, moto_endpoint):
    # moto tracks no cost: a test queues the answer through moto's own API
    queued = {
        "results": [
            {
                "ResultsByTime": [
                    {
                        "TimePeriod": {"Start": "2026-11-05", "End": "2026-11-06"},
                        "Groups": [
                            {
                                "Keys": ["fleet$gpu-default"],
                                "Metrics": {"UnblendedCost": {"Amount": "7.20", "Unit": "USD"}},
                            }
                        ],
                        "Total": {},
                        "Estimated": False,
                    }
                ]
            }
        ]
    }
    request = urllib.request.Request(
        f"{moto_endpoint}/moto-api/static/ce/cost-and-usage-results",
        data=json.dumps(queued).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()

    assert CostExplorerHook().daily_cost_by_tag(DAY) == {"gpu-default": Decimal("7.20")}


def test_instance_hours_sum_the_hourly_active_workers(aws_http):
    cloudwatch = aws_http("cloudwatch")
    dimensions = [{"Name": "FleetSlug", "Value": "gpu-default"}, {"Name": "Stage", "Value": "staging"}]
    for hour, workers in [(1, 2), (2, 2), (3, 1), (23, 3)]:
        cloudwatch.put_metric_data(
            Namespace="ComfyUI/Workers",
            MetricData=[
                {
                    "MetricName": "ActiveWorkers",
                    "Dimensions": dimensions,
                    "Timestamp": datetime(2026, 11, 5, hour, 10, tzinfo=UTC),
                    "Value": workers,
                }
            ],
        )
    cloudwatch.put_metric_data(
        Namespace="ComfyUI/Workers",
        MetricData=[
            {
                "MetricName": "ActiveWorkers",
                "Dimensions": dimensions,
                "Timestamp": datetime(2026, 11, 6, 1, tzinfo=UTC),
                "Value": 50,
            }
        ],
    )

    assert FleetMetricsHook().instance_hours(DAY, "staging", "gpu-default") == 8.0


def test_daily_statistics_give_one_value_per_day_per_statistic(aws_http):
    cloudwatch = aws_http("cloudwatch")
    dimensions = [{"Name": "FleetSlug", "Value": "gpu-default"}, {"Name": "Stage", "Value": "staging"}]
    points = {  # day -> hourly QueueDepth
        date(2026, 11, 2): [0, 4, 8],
        date(2026, 11, 3): [2, 2],
        date(2026, 11, 9): [99],  # the day after the range
    }
    for day, values in points.items():
        cloudwatch.put_metric_data(
            Namespace="ComfyUI/Workers",
            MetricData=[
                {
                    "MetricName": "QueueDepth",
                    "Dimensions": dimensions,
                    "Timestamp": datetime(day.year, day.month, day.day, hour, 30, tzinfo=UTC),
                    "Value": value,
                }
                for hour, value in enumerate(values)
            ],
        )
    cloudwatch.put_metric_data(  # another fleet's metric is not this fleet's
        Namespace="ComfyUI/Workers",
        MetricData=[
            {
                "MetricName": "QueueDepth",
                "Dimensions": [{"Name": "FleetSlug", "Value": "gpu-video"}, {"Name": "Stage", "Value": "staging"}],
                "Timestamp": datetime(2026, 11, 2, 5, tzinfo=UTC),
                "Value": 500,
            }
        ],
    )

    found = FleetMetricsHook().daily_statistics(
        date(2026, 11, 2),
        date(2026, 11, 8),
        "staging",
        "gpu-default",
        {"QueueDepth": ("Maximum", "Average"), "SpotInterruptionCount": ("Sum",)},
    )

    assert sorted(found[("QueueDepth", "Maximum")]) == [2.0, 8.0]
    assert sorted(found[("QueueDepth", "Average")]) == [2.0, 4.0]
    assert found[("SpotInterruptionCount", "Sum")] == []


def test_the_spend_reads_page_through_cost_explorer_anomalies_and_budgets(aws_http):
    from bp_aws.hooks.costs import BudgetsHook
    from devstack.emulator import costs

    costs.plant(
        [{"day": "2026-11-05", "service": "EC2 - Other", "usage_type": "USE1-NatGateway-Bytes",
          "tags": {"stage": "staging"}, "cost": 3.25, "quantity": 72.2, "unit": "GB"}],
        [{"AnomalyId": "a-1", "AnomalyStartDate": "2026-11-05", "AnomalyEndDate": "2026-11-05", "RootCauses": []}],
    )  # fmt: skip
    request = {
        "TimePeriod": {"Start": "2026-11-05", "End": "2026-11-06"},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
    }
    [page] = CostExplorerHook().cost_and_usage(request)
    assert page["ResultsByTime"][0]["Groups"][0]["Keys"] == ["USE1-NatGateway-Bytes"]
    assert [a["AnomalyId"] for a in CostExplorerHook().anomalies(DAY, DAY)] == ["a-1"]
    aws_http("budgets").create_budget(
        AccountId="123456789012",
        Budget={"BudgetName": "all", "BudgetLimit": {"Amount": "500", "Unit": "USD"}, "TimeUnit": "MONTHLY",
                "BudgetType": "COST"},
    )  # fmt: skip
    assert [b["BudgetName"] for b in BudgetsHook().budgets()] == ["all"]
