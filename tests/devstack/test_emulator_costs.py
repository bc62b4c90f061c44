import json
import urllib.request
from datetime import UTC, datetime

from devstack.emulator import costs

ACCOUNT = "123456789012"


def _line(day, service, usage_type, cost, **tags):
    return {
        "day": day,
        "service": service,
        "usage_type": usage_type,
        "tags": tags,
        "cost": cost,
        "quantity": 1,
        "unit": "GB",
    }


LINES = [
    _line("2026-11-01", "EC2 - Other", "USE1-NatGateway-Bytes", 4.0, stage="production"),
    _line("2026-11-02", "EC2 - Other", "USE1-NatGateway-Bytes", 40.0, stage="production"),
    _line("2026-11-02", "EC2 - Other", "USE1-NatGateway-Bytes", 1.0, stage="staging"),
    _line("2026-11-02", "AmazonCloudWatch", "USE1-DataProcessing-Bytes", 2.5, stage="production"),
    _line(
        "2026-11-02",
        "Amazon Elastic Compute Cloud - Compute",
        "SpotUsage:g4dn.xlarge",
        9.0,
        stage="production",
        fleet="gpu-default",
    ),
    _line("2026-11-03", "EC2 - Other", "USE1-NatGateway-Bytes", 5.0),  # untagged
]


def test_cost_explorer_groups_and_filters_the_planted_bill_as_aws_does(aws):
    costs.plant(LINES)
    ce = aws("ce", region_name="us-east-1")
    answer = ce.get_cost_and_usage(
        TimePeriod={"Start": "2026-11-01", "End": "2026-11-03"},  # the end is exclusive
        Granularity="DAILY",
        Metrics=["UnblendedCost"],
        Filter={"Tags": {"Key": "stage", "Values": ["production"]}},
        GroupBy=[{"Type": "DIMENSION", "Key": "SERVICE"}, {"Type": "DIMENSION", "Key": "USAGE_TYPE"}],
    )
    by_day = {
        r["TimePeriod"]["Start"]: {tuple(g["Keys"]): g["Metrics"]["UnblendedCost"]["Amount"] for g in r["Groups"]}
        for r in answer["ResultsByTime"]
    }
    assert list(by_day) == ["2026-11-01", "2026-11-02"]
    assert by_day["2026-11-02"] == {
        ("AmazonCloudWatch", "USE1-DataProcessing-Bytes"): "2.5",
        ("Amazon Elastic Compute Cloud - Compute", "SpotUsage:g4dn.xlarge"): "9.0",
        ("EC2 - Other", "USE1-NatGateway-Bytes"): "40.0",
    }
    by_tag = ce.get_cost_and_usage(
        TimePeriod={"Start": "2026-11-02", "End": "2026-11-04"},
        Granularity="MONTHLY",
        Metrics=["UnblendedCost", "UsageQuantity"],
        Filter={
            "And": [
                {"Dimensions": {"Key": "SERVICE", "Values": ["EC2 - Other"]}},
                {"Not": {"Tags": {"Key": "stage", "Values": ["staging"]}}},
            ]
        },
        GroupBy=[{"Type": "TAG", "Key": "stage"}],
    )["ResultsByTime"]
    assert [(g["Keys"], g["Metrics"]["UnblendedCost"]["Amount"]) for g in by_tag[0]["Groups"]] == [
        (["stage$"], "5.0"),  # usage without the tag: an empty value
        (["stage$production"], "40.0"),
    ]
    total = ce.get_cost_and_usage(
        TimePeriod={"Start": "2026-11-01", "End": "2026-11-04"}, Granularity="MONTHLY", Metrics=["UnblendedCost"]
    )["ResultsByTime"][0]
    assert (total["Total"]["UnblendedCost"]["Amount"], total["Groups"]) == ("61.5", [])


def test_an_account_without_a_planted_bill_keeps_motos_queue(aws):
    ce = aws("ce", region_name="us-east-1")
    answer = ce.get_cost_and_usage(
        TimePeriod={"Start": "2026-11-01", "End": "2026-11-02"}, Granularity="DAILY", Metrics=["UnblendedCost"]
    )
    assert answer["ResultsByTime"] == []


def test_anomalies_are_those_ending_in_the_date_interval(aws):
    planted = [
        {"AnomalyId": "old", "AnomalyStartDate": "2026-10-01", "AnomalyEndDate": "2026-10-02", "RootCauses": []},
        {
            "AnomalyId": "nat",
            "AnomalyStartDate": "2026-11-01",
            "AnomalyEndDate": "2026-11-02",
            "RootCauses": [],
            "Impact": {"MaxImpact": 36.0, "TotalImpact": 36.0},
        },
    ]
    costs.plant(anomalies=planted)
    ce = aws("ce", region_name="us-east-1")
    found = ce.get_anomalies(DateInterval={"StartDate": "2026-11-02", "EndDate": "2026-11-02"})["Anomalies"]
    assert [a["AnomalyId"] for a in found] == ["nat"]
    assert ce.get_anomalies(DateInterval={"StartDate": "2026-11-03"})["Anomalies"] == []


def test_a_cost_budget_spends_what_its_tagged_lines_cost_this_month(aws):
    today = datetime.now(UTC).date()
    costs.plant(
        [
            _line(today.isoformat(), "EC2 - Other", "USE1-NatGateway-Bytes", 12.5, stage="production"),
            _line(today.isoformat(), "EC2 - Other", "USE1-NatGateway-Bytes", 99.0, stage="staging"),
        ]
    )
    budgets = aws("budgets", region_name="us-east-1")
    budgets.create_budget(
        AccountId=ACCOUNT,
        Budget={
            "BudgetName": "production-monthly",
            "BudgetLimit": {"Amount": "10", "Unit": "USD"},
            "TimeUnit": "MONTHLY",
            "BudgetType": "COST",
            "CostFilters": {"TagKeyValue": ["user:stage$production"]},
        },
    )
    [budget] = budgets.describe_budgets(AccountId=ACCOUNT)["Budgets"]
    spend = budget["CalculatedSpend"]
    assert spend["ActualSpend"]["Amount"] == "12.50"
    assert float(spend["ForecastedSpend"]["Amount"]) >= 12.5


def test_the_bill_is_planted_over_http_on_the_moto_server(aws_http, moto_endpoint):
    body = json.dumps({"lines": LINES[:2]}).encode()
    request = urllib.request.Request(
        f"{moto_endpoint}/moto-api/bp/costs", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).close()
    answer = aws_http("ce").get_cost_and_usage(
        TimePeriod={"Start": "2026-11-01", "End": "2026-11-03"}, Granularity="MONTHLY", Metrics=["UnblendedCost"]
    )
    assert answer["ResultsByTime"][0]["Total"]["UnblendedCost"]["Amount"] == "44.0"
