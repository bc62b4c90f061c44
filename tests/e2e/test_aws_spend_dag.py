"""aws_spend_daily on the real services and the emulator's bill (devstack.aws_bill: a
month of both stages, production's NAT data processing ten times its usual on the last
day, which AWS's anomaly detector reports too)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from devstack import aws_bill
from include.economics import warehouse
from tests.e2e.helpers import log, run_to_end, states, topic_inbox

pytestmark = [pytest.mark.e2e, pytest.mark.services]

DAG = "aws_spend_daily"


def test_a_nat_spike_is_published_and_alerted_once_naming_its_usage_type_and_a_rerun_sends_nothing(
    stack, client, economics
):
    day = economics.window.last_day
    production, staging = (topic_inbox(stack, f"bp-ops-alerts-{s}", f"spend-{s}") for s in ("production", "staging"))

    run = run_to_end(client, DAG, {"day": day.isoformat()})
    assert run.state == "success", states(client, DAG, run)

    rows = warehouse.read_days(economics.warehouse_engine(), "aws_spend_daily", day, day)
    assert set(rows["hotspot"]) == {
        "nat_data_processing", "cloudwatch_logs_ingestion", "s3_egress", "cloudfront_egress", "gpu_instances", "other",
    }  # fmt: skip
    nat = rows[(rows["stage"] == "production") & (rows["hotspot"] == "nat_data_processing")]
    assert list(nat["cost_usd"]) == [Decimal(str(aws_bill.NAT_SPIKE_USD))]
    assert set(rows[rows["hotspot"] == "gpu_instances"]["fleet"]) == {"gpu-default"}  # split by the fleet tag

    [alert] = production()
    assert alert["Subject"] == f"[CRITICAL] AWS NAT Gateway data processing above its baseline in production on {day}"
    for said in ("usage_type=USE1-NatGateway-Bytes", f"anomaly {aws_bill.ANOMALY_ID}", "public ALB", "VPC endpoints"):
        assert said in alert["Message"], alert["Message"]
    assert staging() == []  # staging's day is ordinary, and its budget holds
    assert "1 finding(s) in the AWS spend" in log(client, DAG, run, "send_alerts")

    again = run_to_end(client, DAG, {"day": day.isoformat()})
    assert again.state == "success", states(client, DAG, again)
    assert production() == []
    assert "Already sent" in log(client, DAG, again, "send_alerts")
    rerun_rows = warehouse.read_days(economics.warehouse_engine(), "aws_spend_daily", day, day)
    assert len(rerun_rows) == len(rows)
