from datetime import date, timedelta
from decimal import Decimal

import pytest

from include.economics import aws_spend
from include.economics.aws_spend import Finding, SpendLine
from include.economics.cost_hotspots import EC2_COMPUTE, hotspot_of
from include.errors import InvalidRequest

DAY = date(2026, 11, 26)  # a Thursday
NAT = ("EC2 - Other", "USE1-NatGateway-Bytes")
GPU = (EC2_COMPUTE, "USE1-SpotUsage:g4dn.xlarge")


def _month(service_usage, today: float, usual: float, stage="production", fleet="", days=28):
    """``days`` of ``usual`` (with a little noise) before DAY, then ``today``."""
    lines = []
    for back in range(days, -1, -1):
        cost = today if back == 0 else usual * (0.96, 1.0, 1.04)[back % 3]
        day = DAY - timedelta(days=back)
        lines.append(SpendLine(day, stage, *service_usage, Decimal(str(round(cost, 6))), cost / 0.045, "GB", fleet))
    return lines


@pytest.mark.parametrize(
    ("service", "usage_type", "hotspot"),
    [
        ("EC2 - Other", "USE1-NatGateway-Bytes", "nat_data_processing"),
        ("EC2 - Other", "USE1-NatGateway-Hours", "other"),  # the gateway's hours are no data processing
        ("AmazonCloudWatch", "USE1-DataProcessing-Bytes", "cloudwatch_logs_ingestion"),
        ("AmazonCloudWatch", "USE1-CW:MetricMonitorUsage", "other"),
        ("Amazon Simple Storage Service", "USE1-DataTransfer-Out-Bytes", "s3_egress"),
        ("Amazon CloudFront", "US-DataTransfer-Out-Bytes", "cloudfront_egress"),
        (EC2_COMPUTE, "USE1-SpotUsage:g4dn.xlarge", "gpu_instances"),
        (EC2_COMPUTE, "BoxUsage:p4d.24xlarge", "gpu_instances"),
        (EC2_COMPUTE, "USE1-BoxUsage:t3.small", "other"),  # not a GPU
    ],
)
def test_each_line_lands_in_its_seed_hotspot_by_service_and_usage_type(service, usage_type, hotspot):
    assert hotspot_of(service, usage_type) == hotspot


def test_a_nat_spike_is_found_naming_its_usage_type_and_the_seeds_cause():
    lines = _month(NAT, today=40.0, usual=4.0) + _month(GPU, today=20.0, usual=20.0, fleet="gpu-default")
    [finding] = aws_spend.judge(DAY, lines, {})
    assert (finding.hotspot, finding.kind, finding.usage_type) == ("nat_data_processing", "baseline", NAT[1])
    assert (finding.severity, finding.value) == ("critical", 40.0)
    assert finding.threshold == pytest.approx(4.0)
    text = aws_spend.alert(DAY, finding).text()
    assert "NAT Gateway data processing above its baseline in production" in text
    assert "usage_type=USE1-NatGateway-Bytes" in text
    assert "public ALB" in text
    assert "VPC endpoints" in text


def test_an_ordinary_day_a_small_excess_and_a_fall_find_nothing():
    assert aws_spend.judge(DAY, _month(NAT, today=4.1, usual=4.0), {}) == []
    assert aws_spend.judge(DAY, _month(NAT, today=7.0, usual=4.0), {}) == []  # +$3: under the $5 floor
    assert aws_spend.judge(DAY, _month(NAT, today=0.5, usual=40.0), {}) == []  # cheaper is no alarm


def test_a_hotspot_over_its_budget_is_critical_and_names_the_fleet_that_spent():
    lines = _month(GPU, today=30.0, usual=30.0, fleet="gpu-default")
    [finding] = aws_spend.judge(DAY, lines, {"production": {"gpu_instances": 25}})
    assert (finding.severity, finding.kind, finding.fleet, finding.threshold) == (
        "critical",
        "budget",
        "gpu-default",
        25,
    )
    assert aws_spend.judge(DAY, lines, {"staging": {"gpu_instances": 25}}) == []  # another stage's budget


def test_the_total_above_baseline_is_said_only_when_no_hotspot_explains_it():
    spike = _month(NAT, today=40.0, usual=4.0)
    assert [f.hotspot for f in aws_spend.judge(DAY, spike, {})] == ["nat_data_processing"]
    spread = [  # every "other" service a bit up: no hotspot stands out, the stage's total does
        line
        for n in range(6)
        for line in _month(("Amazon RDS", f"USE1-InstanceUsage:db.r{n}"), today=9.0, usual=5.0, stage="staging")
    ]
    found = aws_spend.judge(DAY, spread, {})
    assert {(f.stage, f.hotspot) for f in found} == {("staging", "other")}
    assert aws_spend.judge(DAY, spread, {"staging": {"total": 20}})[-1].kind == "budget"


def test_an_aws_anomaly_on_a_hotspot_already_found_is_said_in_that_finding_not_again():
    findings = aws_spend.judge(DAY, _month(NAT, today=40.0, usual=4.0), {})
    same = {
        "AnomalyId": "a-nat",
        "RootCauses": [{"Service": NAT[0], "UsageType": NAT[1]}],
        "Impact": {"TotalImpact": 36.0, "TotalActualSpend": 40.0, "TotalExpectedSpend": 4.0},
    }
    other = {
        "AnomalyId": "a-logs",
        "RootCauses": [{"Service": "AmazonCloudWatch", "UsageType": "USE1-DataProcessing-Bytes"}],
        "Impact": {"TotalImpact": 150.0, "TotalActualSpend": 160.0, "TotalExpectedSpend": 10.0},
    }
    joined = aws_spend.with_aws_anomalies(findings, [same, other], "production")
    assert [(f.hotspot, f.kind) for f in joined] == [
        ("nat_data_processing", "baseline"),
        ("cloudwatch_logs_ingestion", "aws-anomaly"),
    ]
    assert "anomaly a-nat, impact $36.00" in joined[0].detail
    assert (joined[1].severity, joined[1].value, joined[1].threshold) == ("critical", 160.0, 10.0)
    assert "Laravel/Next" in aws_spend.alert(DAY, joined[1]).text()


def test_aws_budgets_over_their_limit_or_forecast_over_it_are_findings():
    def budget(name, limit, actual, forecast):
        spend = {"ActualSpend": {"Amount": str(actual)}, "ForecastedSpend": {"Amount": str(forecast)}}
        return {"BudgetName": name, "BudgetLimit": {"Amount": str(limit)}, "CalculatedSpend": spend}

    found = aws_spend.budget_findings(
        [budget("over", 100, 120, 300), budget("heading", 100, 40, 130), budget("fine", 100, 20, 60)], "production"
    )
    assert [(f.severity, f.value, f.threshold) for f in found] == [("critical", 120, 100), ("warning", 130, 100)]
    assert "AWS budget heading: forecast $130.00" in aws_spend.alert(DAY, found[1]).text()


def test_the_gpu_lines_of_the_day_are_replaced_by_the_same_usage_split_by_fleet():
    usage = _month(GPU, today=30.0, usual=30.0)
    fleets = [SpendLine(DAY, "production", *GPU, Decimal(v), 1.0, "Hrs", f) for f, v in (("a", "10"), ("b", "20"))]
    lines = aws_spend.with_fleets(usage, fleets, DAY)
    assert sum(line.cost for line in lines if line.day == DAY) == Decimal("30")
    assert {row["fleet"] for row in aws_spend.rows(DAY, lines)} == {"a", "b"}
    assert len([line for line in lines if line.day < DAY]) == 28


def test_a_line_and_a_finding_travel_through_xcom_as_they_were():
    line = _month(NAT, today=40.0, usual=4.0)[-1]
    assert SpendLine.from_dict(line.as_dict()) == line
    finding = Finding("warning", "staging", "s3_egress", "baseline", 12.5, 3.0, "USE1-DataTransfer-Out-Bytes")
    assert Finding.from_dict(finding.as_dict()) == finding


@pytest.mark.parametrize(
    "text",
    ['{"staging": {"nat": 5}}', '{"dev": {"total": 5}}', '{"staging": {"total": -1}}', "[1]", "{nope"],
)
def test_a_budgets_variable_that_would_never_alert_is_refused_naming_the_entry(text):
    with pytest.raises(InvalidRequest, match="aws_daily_budgets"):
        aws_spend.parse_budgets(text)
    assert aws_spend.parse_budgets('{"production": {"total": 500, "nat_data_processing": 20}}')["production"]


def test_influx_points_carry_only_the_stage_and_the_hotspot():
    points = aws_spend.influx_points(DAY, _month(NAT, today=40.0, usual=4.0))
    assert [p.to_line_protocol().split(" ")[0] for p in points] == [
        "aws_spend,hotspot=nat_data_processing,stage=production",
        "aws_spend,hotspot=total,stage=production",
    ]
    assert "cost_usd=40" in points[0].to_line_protocol()


def test_the_week_says_where_the_aws_money_went_biggest_first_against_the_week_before():
    import pandas as pd

    week = DAY - timedelta(days=6)
    lines = _month(NAT, today=40.0, usual=4.0) + _month(GPU, today=20.0, usual=20.0, fleet="gpu-default")
    frame = pd.DataFrame([row for day in {line.day for line in lines} for row in aws_spend.rows(day, lines)])
    this, before = frame[frame["day"] >= week], frame[(frame["day"] < week) & (frame["day"] >= week - timedelta(7))]
    [gpu, nat] = aws_spend.week_review(this, before)
    assert (gpu.hotspot, gpu.cost_usd, gpu.change_pct) == ("gpu_instances", Decimal("140.0"), 0.0)
    assert (nat.label, nat.top_usage_type) == ("NAT Gateway data processing", NAT[1])
    assert nat.change_pct == pytest.approx(float((nat.cost_usd - nat.previous_usd) / nat.previous_usd * 100), abs=0.1)
    assert nat.cost_usd > nat.previous_usd  # the spike is in this week


def test_the_outcome_says_each_hotspots_day_and_each_finding_with_its_figures_and_usage_type():
    lines = _month(NAT, today=40.0, usual=4.0)
    said = aws_spend.readable(DAY, lines)
    assert said == [
        f"production  {'NAT Gateway data processing':<30} {'$40.00':>12}",
        f"production  {'total':<30} {'$40.00':>12}",
    ]
    [finding] = aws_spend.judge(DAY, lines, {})
    line = aws_spend.finding_line(DAY, finding)
    assert line.startswith("[CRITICAL] AWS NAT Gateway data processing above its baseline in production on 2026-11-26")
    assert ": $40.00 against baseline $4.00; usage type USE1-NatGateway-Bytes" in line
