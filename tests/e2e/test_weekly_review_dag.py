"""weekly_review_pack on the real services: the pack of the last full week is built from
the warehouse, uploaded and announced with links that open it; a week with a missing day
says so, or fails before anything is built when require_all_days is on; a bad week is
refused."""

from __future__ import annotations

import json
import urllib.request
from datetime import timedelta

import pytest

from include.cli.airflow_client import AirflowApiError
from include.economics import warehouse
from tests.e2e.conftest import stored
from tests.e2e.helpers import run_to_end, topic_inbox

pytestmark = [pytest.mark.e2e, pytest.mark.fleets]
DAG = "weekly_review_pack"


def _run(client, conf):
    run = client.trigger(DAG, conf)
    return client.wait_for_run(DAG, run.run_id, timeout=300)


def _states(client, run):
    return {t["task_id"]: t["state"] for t in client.task_instances(DAG, run.run_id)}


def _log(client, run, task_id):
    return "\n".join(client.task_log_lines(DAG, run.run_id, task_id, 1))


def _uploaded(stack, week):
    listing = stack.aws_client()("s3").list_objects_v2(Bucket=stack.logs_bucket, Prefix=f"reports/weekly/{week}/")
    return sorted(o["Key"].rsplit("/", 1)[1] for o in listing.get("Contents", []))


@pytest.fixture(scope="module")
def report_inbox(stack):
    """An SQS queue subscribed to the report topic: what the readers receive."""
    return topic_inbox(stack, "bp-reports", "weekly-review-inbox")


@pytest.fixture
def week_without_its_wednesday(economics):
    """Three weeks back (all warehouse history), its Wednesday taken out, put back afterwards."""
    week = economics.window.review_week.previous().previous()
    wednesday = week.first_day + timedelta(days=2)
    engine = economics.warehouse_engine()
    kept = {name: warehouse.read_days(engine, name, wednesday, wednesday) for name in warehouse.TABLES}
    with engine.begin() as connection:
        for table in warehouse.TABLES.values():
            connection.execute(table.delete().where(table.c.day == wednesday))
    yield week, wednesday
    warehouse.publish(engine, wednesday, kept)
    engine.dispose()


@pytest.fixture(scope="module")
def whole_review_week(client, economics):
    """The last full week, whole in the warehouse. The seeded history ends the day before
    yesterday and yesterday is ai_economics_daily's to publish: on a Monday the review week
    ends yesterday, so that run comes first (as in the demo)."""
    week = economics.window.review_week
    if economics.window.last_day in week.days():
        published = run_to_end(client, "ai_economics_daily", {"day": economics.window.last_day.isoformat()})
        assert published.state == "success"
    return week


def test_the_last_full_week_is_packed_uploaded_and_announced(stack, client, economics, report_inbox, whole_review_week):
    week = whole_review_week

    run = _run(client, {"week": str(week)})

    assert run.state == "success", _states(client, run)
    files = stored(stack, client.xcom(DAG, run.run_id, "build_pack")["location"])
    names = [f"weekly-review-{week}.html", f"weekly-review-{week}.md", f"weekly-review-{week}.pdf", "review.json"]
    assert sorted(files) == sorted(names)
    assert _uploaded(stack, week) == sorted(names)
    data = json.loads(files["review.json"])
    assert data["days_missing"] == []
    planted = {"feature:image-gen", "model:gemini-2.5-pro"}  # the regression planted in the synthetic ledger
    if economics.window.last_day in week.days():  # the token-burn anomaly day is in this week too
        planted |= {"feature:video-effects", "model:claude-sonnet-4"}
    assert {r["dimension"] for r in data["regressions"]} == planted
    [notice] = [m for m in report_inbox() if m["Subject"] == f"Weekly review {week} is ready"]
    html_link = next(
        line.split(": ", 1)[1]
        for line in notice["Message"].splitlines()
        if line.startswith(f"weekly-review-{week}.html")
    )
    with urllib.request.urlopen(html_link, timeout=10) as response:
        assert response.read() == files[f"weekly-review-{week}.html"]
    announce_log = _log(client, run, "announce")
    assert "Open the pack (links valid 7 days)" in announce_log
    assert html_link not in announce_log  # the presigned link is masked
    assert "X-Amz-Signature" not in announce_log


def test_a_week_with_a_missing_day_fails_when_strict_and_says_so_when_not(
    stack, client, economics, week_without_its_wednesday
):
    week, wednesday = week_without_its_wednesday

    strict = _run(client, {"week": str(week), "require_all_days": True})

    assert strict.state == "failed"
    states = _states(client, strict)
    assert states["check_coverage"] == "failed"
    assert {states[t] for t in ("read_fleet_metrics", "build_pack", "publish_pack", "announce")} == {"upstream_failed"}
    assert f"{wednesday:%a} {wednesday} is missing" in _log(client, strict, "check_coverage")
    assert "require_all_days is on, so no pack was built and nothing was uploaded" in _log(
        client, strict, "check_coverage"
    )
    assert _uploaded(stack, week) == []

    lenient = _run(client, {"week": str(week)})

    assert lenient.state == "success"
    files = stored(stack, client.xcom(DAG, lenient.run_id, "build_pack")["location"])
    html = files[f"weekly-review-{week}.html"].decode()
    assert f"Only 6 of 7 days of {week} are in the warehouse: {wednesday:%a} {wednesday} is missing" in html
    assert json.loads(files["review.json"])["days_missing"] == [str(wednesday)]


def test_a_bad_week_is_refused(client):
    with pytest.raises(AirflowApiError) as refused:
        client.trigger(DAG, {"week": "2026-W47; rm -rf /"})
    assert refused.value.status == 400

    run = _run(client, {"week": "2025-W53"})

    assert run.state == "failed"
    assert "week '2025-W53' does not exist: 2025 has weeks W01 to W52. No pack was built." in _log(
        client, run, "resolve_week"
    )
    assert set(_states(client, run).values()) == {"failed", "upstream_failed"}
