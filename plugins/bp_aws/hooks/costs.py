"""Cost Explorer and fleet-metric reads for the GPU infrastructure cost of a day."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from include.economics import infra_cost
from include.naming import platform
from include.naming.fleet import Fleet


class CostExplorerHook(AwsBaseHook):
    """Interact with AWS Cost Explorer through a boto3 ``ce`` client."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ce"
        super().__init__(*args, **kwargs)

    def cost_and_usage(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every page of one GetCostAndUsage request (Cost Explorer has no paginator for it).
        .. seealso:: CostExplorer.Client.get_cost_and_usage"""
        pages, token = [], None
        while True:
            page = self.conn.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
            pages.append(page)
            token = page.get("NextPageToken")
            if not token:
                return pages

    def daily_cost_by_tag(self, day: date, tag_key: str = infra_cost.FLEET_TAG) -> dict[str, Decimal]:
        """fleet -> UnblendedCost of ``day``."""
        return infra_cost.parse_cost_explorer(
            self.cost_and_usage(infra_cost.cost_explorer_request(day, tag_key)), tag_key
        )

    def service_usage(self, day: date, service: str) -> list[dict]:
        """Cost Explorer's groups of ``day`` for one service by usage type (UnblendedCost,
        UsageQuantity): the Bedrock bill."""
        request = {
            "TimePeriod": {"Start": day.isoformat(), "End": (day + timedelta(days=1)).isoformat()},
            "Granularity": "DAILY",
            "Metrics": ["UnblendedCost", "UsageQuantity"],
            "Filter": {"Dimensions": {"Key": "SERVICE", "Values": [service]}},
            "GroupBy": [{"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
        }
        results = [result for page in self.cost_and_usage(request) for result in page.get("ResultsByTime", [])]
        return [group for result in results for group in result.get("Groups", [])]

    def anomalies(self, first: date, last: date) -> list[dict[str, Any]]:
        """AWS Cost Anomaly Detection's anomalies whose AnomalyEndDate is in [first, last].
        .. seealso:: CostExplorer.Client.get_anomalies"""
        found, token = [], None
        interval = {"StartDate": first.isoformat(), "EndDate": last.isoformat()}
        while True:
            page = self.conn.get_anomalies(DateInterval=interval, **({"NextPageToken": token} if token else {}))
            found += page.get("Anomalies", [])
            token = page.get("NextPageToken")
            if not token:
                return found


class BudgetsHook(AwsBaseHook):
    """Read AWS Budgets through a boto3 ``budgets`` client."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "budgets"
        super().__init__(*args, **kwargs)

    def budgets(self) -> list[dict[str, Any]]:
        """Every budget of the account with its CalculatedSpend (actual and forecast).
        .. seealso:: Budgets.Client.describe_budgets"""
        pages = self.conn.get_paginator("describe_budgets").paginate(AccountId=self.account_id)
        return [budget for page in pages for budget in page.get("Budgets", [])]


class FleetMetricsHook(AwsBaseHook):
    """Read the fleet metrics of the ADR-0005 contract from CloudWatch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)

    def daily_statistics(
        self,
        first_day: date,
        last_day: date,
        fleet_stage: str,
        fleet_slug: str,
        metrics: Mapping[str, Sequence[str]],
    ) -> dict[tuple[str, str], list[float]]:
        """(metric, statistic) -> one value per day that has data, from first_day to last_day
        inclusive, in one paginated GetMetricData. .. seealso:: CloudWatch.Client.get_metric_data"""
        queries, names = [], {}
        for metric, statistics in metrics.items():
            for statistic in statistics:
                query_id = f"q{len(queries)}"
                names[query_id] = (metric, statistic)
                queries.append(
                    {
                        "Id": query_id,
                        "MetricStat": {
                            "Metric": {
                                "Namespace": platform.WORKER_METRICS_NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": Fleet(fleet_stage, fleet_slug).metric_dimensions,
                            },
                            "Period": 86400,
                            "Stat": statistic,
                        },
                        "ReturnData": True,
                    }
                )
        found: dict[tuple[str, str], list[float]] = {name: [] for name in names.values()}
        pages = self.conn.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries,
            StartTime=datetime.combine(first_day, time.min, tzinfo=UTC),
            EndTime=datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC),
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                found[names[result["Id"]]].extend(float(value) for value in result["Values"])
        return found

    def metric_data(self, queries: list[dict[str, Any]], start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every MetricDataResult of ``queries`` over [start, end), all pages joined.
        .. seealso:: CloudWatch.Client.get_metric_data"""
        results: dict[str, dict[str, Any]] = {}
        pages = self.conn.get_paginator("get_metric_data").paginate(
            MetricDataQueries=queries, StartTime=start, EndTime=end
        )
        for page in pages:
            for result in page["MetricDataResults"]:
                joined = results.setdefault(result["Id"], {"Id": result["Id"], "Timestamps": [], "Values": []})
                joined["Timestamps"] += result["Timestamps"]
                joined["Values"] += result["Values"]
        return list(results.values())

    def instance_hours(self, day: date, fleet_stage: str, fleet_slug: str) -> float:
        """Sum of the day's hourly averages of ActiveWorkers. .. seealso:: get_metric_statistics"""
        start = datetime.combine(day, time.min, tzinfo=UTC)
        response = self.conn.get_metric_statistics(
            Namespace=platform.WORKER_METRICS_NAMESPACE,
            MetricName="ActiveWorkers",
            Dimensions=Fleet(fleet_stage, fleet_slug).metric_dimensions,
            StartTime=start,
            EndTime=start + timedelta(days=1),
            Period=3600,
            Statistics=["Average"],
        )
        return float(sum(point["Average"] for point in response["Datapoints"]))
