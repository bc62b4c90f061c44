"""The Airflow side of weekly_review_pack: request validation, coverage, upload, notice."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks import weekly_review_pack as weekly_review
from bp_tasks.economics_settings import Settings
from include.economics import warehouse
from include.economics.calendar import IsoWeek

W47 = IsoWeek(2026, 47)


def test_the_rules_come_from_variables_and_a_bad_one_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_MARGIN_FLOOR_PCT", "25")
    monkeypatch.setenv("AIRFLOW_VAR_WEEKLY_REVIEW_RULES", json.dumps({"p95_pct": 30}))

    rules = weekly_review.rules(Settings.load())

    assert (rules.p95_pct, rules.margin_floor_pct, rules.cost_per_request_pct) == (30.0, 25.0, 15.0)
    monkeypatch.setenv("AIRFLOW_VAR_WEEKLY_REVIEW_RULES", json.dumps({"p99": 30}))
    with pytest.raises(AirflowFailException, match="Variable weekly_review_rules is invalid: unknown"):
        weekly_review.rules(Settings.load())


@pytest.fixture
def six_day_warehouse(monkeypatch, tmp_path):
    """A warehouse that has published every day of W46 and W47 but Wednesday 18 November."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    warehouse.metadata.create_all(engine)
    days = [*W47.previous().days(), *(d for d in W47.days() if d != date(2026, 11, 18))]
    rows = pd.DataFrame(
        [
            {
                "day": day,
                "plan": "all",
                "revenue_usd": Decimal(10),
                "ai_cost_usd": Decimal(4),
                "infra_cost_usd": Decimal(1),
                "margin_usd": Decimal(5),
                "margin_pct": Decimal(50),
            }
            for day in days
        ]
    )
    with engine.begin() as connection:
        connection.execute(warehouse.ai_margin_daily.insert(), warehouse.records(warehouse.ai_margin_daily, rows))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AI_WAREHOUSE", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")})
    )
    return engine


def test_coverage_names_the_missing_day_and_strict_mode_refuses(six_day_warehouse):
    assert weekly_review.check_coverage.function(str(W47), params={"require_all_days": False}) == {
        "week": "2026-W47",
        "missing": ["2026-11-18"],
    }

    with pytest.raises(AirflowFailException) as refused:
        weekly_review.check_coverage.function(str(W47), params={"require_all_days": True})

    assert str(refused.value) == (
        "Only 6 of 7 days of 2026-W47 are in the warehouse: Wed 2026-11-18 is missing, and the week's totals "
        "leave it out. require_all_days is on, so no pack was built and nothing was uploaded. Re-run "
        'ai_economics_daily for 2026-11-18 (e.g. trigger it with conf {"day": "2026-11-18"}), then clear this run.'
    )


def test_the_pack_is_uploaded_and_announced_with_links_that_open_it(aws_http, tmp_path, monkeypatch):
    account = aws_http("sts").get_caller_identity()["Account"]
    aws_http("s3").create_bucket(Bucket=f"bp-logs-{account}")
    sns, sqs = aws_http("sns"), aws_http("sqs")
    topic = sns.create_topic(Name="bp-reports")["TopicArn"]
    queue = sqs.create_queue(QueueName="reports-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    files = {"weekly-review-2026-W47.html": "<html>pack</html>", "weekly-review-2026-W47.pdf": "%PDF-1.7"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    built = {
        "week": "2026-W47",
        "location": f"file://{tmp_path}",
        "files": list(files),
        "summary": "# Weekly review 2026-W47",
        "days_missing": ["2026-11-18"],
    }

    aws = {"aws_conn_id": "aws_default"}
    uploaded = weekly_review.publish_pack.function(built, params=aws)
    uploaded_again = weekly_review.publish_pack.function(built, params=aws)  # a re-run replaces, never duplicates
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow")
    run = SimpleNamespace(dag_id="weekly_review_pack", run_id="r1")
    reached = weekly_review.announce.function(built, uploaded, params=aws, dag_run=run)

    key = "reports/weekly/2026-W47/weekly-review-2026-W47.html"
    assert uploaded == uploaded_again
    assert uploaded["weekly-review-2026-W47.html"] == f"s3://bp-logs-{account}/{key}"
    listing = aws_http("s3").list_objects_v2(Bucket=f"bp-logs-{account}", Prefix="reports/weekly/2026-W47/")
    assert [o["Key"] for o in listing["Contents"]] == [key, key.replace(".html", ".pdf")]
    head = aws_http("s3").head_object(Bucket=f"bp-logs-{account}", Key=key)
    assert head["ContentType"] == "text/html; charset=utf-8"
    assert reached == [topic]
    [message] = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue)["Messages"]]
    assert message["Subject"] == "Weekly review 2026-W47 is ready (1 day(s) missing)"
    lines = message["Message"].splitlines()
    assert lines[0] == "# Weekly review 2026-W47"
    links = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines if line.startswith("weekly-review")}
    assert set(links) == set(files)
    for name, link in links.items():
        assert "X-Amz-Signature=" in link
        assert "X-Amz-Expires=604800" in link
        with urllib.request.urlopen(link, timeout=10) as response:
            assert response.read().decode() == files[name]
    assert lines[-1] == "Run: http://airflow/dags/weekly_review_pack/runs/r1"


def test_fleet_metrics_read_each_configured_fleet(aws_http, monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_VAR_ECONOMICS_FLEETS",
        json.dumps([{"stage": "staging", "slug": "gpu-default", "instance_type": "g5.xlarge"}]),
    )
    aws_http("cloudwatch").put_metric_data(
        Namespace="ComfyUI/Workers",
        MetricData=[
            {
                "MetricName": "SpotInterruptionCount",
                "Dimensions": [{"Name": "FleetSlug", "Value": "gpu-default"}, {"Name": "Stage", "Value": "staging"}],
                "Timestamp": datetime(2026, 11, 17, 9, tzinfo=UTC) + timedelta(hours=hour),
                "Value": 1,
            }
            for hour in range(3)
        ],
    )

    figures = weekly_review.read_fleet_metrics.function({"week": str(W47)}, params={"aws_conn_id": "aws_default"})

    assert list(figures) == ["staging/gpu-default"]
    assert figures["staging/gpu-default"]["spot_interruptions"] == 3
    assert figures["staging/gpu-default"]["queue_depth_max"] is None


def test_the_pack_is_never_uploaded_into_a_logs_bucket_another_account_owns(aws_http, tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    from bp_aws.hooks.s3 import OwnBucketsS3Hook

    account = aws_http("sts").get_caller_identity()["Account"]
    aws_http("s3").create_bucket(Bucket=f"bp-logs-{account}")
    (tmp_path / "weekly-review-2026-W47.html").write_text("<html>finance</html>")
    built = {"week": "2026-W47", "location": f"file://{tmp_path}", "files": ["weekly-review-2026-W47.html"]}
    # as if the bucket of the predictable name had been deleted and re-created elsewhere
    monkeypatch.setattr(OwnBucketsS3Hook, "bucket_owner", "999999999999")

    with pytest.raises(ClientError) as refused:
        weekly_review.publish_pack.function(built, params={"aws_conn_id": "aws_default"})

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "Contents" not in aws_http("s3").list_objects_v2(Bucket=f"bp-logs-{account}", Prefix="reports/")
