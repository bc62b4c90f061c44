"""The distributed engine users deploy: CeleryExecutor on PostgreSQL and Redis, two
workers with homes and temporary folders of their own, files handed over through the
emulator's S3 and task logs read from it. Economics publishes and re-runs identically,
a bad ledger publishes nothing, the weekly pack is built and uploaded, a failed refresh
is rolled back - with tasks on both workers - and a worker killed in the middle of
``compute`` leaves either the complete day or nothing new, never part of one."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta

import pytest

from devstack import baseline
from include.economics import warehouse
from tests.conftest import ARTIFACTS
from tests.e2e.conftest import stored
from tests.e2e.helpers import (
    QUICK_VERDICT,
    plan_refresh_failure,
    plant_bad_ledger_row,
    provision_fleet,
    published,
    run_to_end,
    scale,
    states,
)

pytestmark = [pytest.mark.e2e, pytest.mark.celery]
ECONOMICS, WEEKLY, ROLLOUT = "ai_economics_daily", "weekly_review_pack", "gpu_bundle_rollout"
#: every run this module started, for the check that both workers took tasks
RUNS: list[tuple[str, str]] = []


def _run(client, dag_id, conf):
    run = run_to_end(client, dag_id, conf)
    RUNS.append((dag_id, run.run_id))
    return run


def test_it_is_the_celery_engine_on_postgres_with_two_workers(celery):
    stack = celery[0]
    assert stack.describe() == "CeleryExecutor with 2 workers (w1, w2) on PostgreSQL and Redis"
    assert stack.database_url.startswith("postgresql+psycopg2://")
    assert stack.storage_base.startswith(f"s3://aws_default@{stack.logs_bucket}/")
    assert {"worker-w1", "worker-w2"} <= set(stack.components)


def test_a_day_publishes_and_reruns_identically_through_s3(celery):
    stack, client, economics, _ = celery
    day = economics.window.last_day

    first_run = _run(client, ECONOMICS, {"day": day.isoformat()})
    first = published(economics, day)
    rerun = _run(client, ECONOMICS, {"day": day.isoformat()})

    assert (first_run.state, rerun.state) == ("success", "success")
    assert published(economics, day) == first
    assert len(first["ai_cost_daily"]) > 100
    location = client.xcom(ECONOMICS, rerun.run_id, "compute")["location"]
    assert location.startswith(f"s3://aws_default@{stack.logs_bucket}/airflow/storage/ai_economics_daily/{day}/")
    assert "_manifest.json" in stored(stack, location)
    lines = list(client.task_log_lines(ECONOMICS, rerun.run_id, "publish_warehouse", 1))
    assert any(f"Replaced {day} in the warehouse" in line for line in lines)  # read back from S3 by the API


def test_a_bad_ledger_publishes_nothing(celery):
    _, client, economics, _ = celery
    day = economics.window.first_day
    plant_bad_ledger_row(economics, day)

    run = _run(client, ECONOMICS, {"day": day.isoformat()})

    assert run.state == "failed"
    assert states(client, ECONOMICS, run)["publish_warehouse"] == "upstream_failed"
    assert all(rows == [] for rows in published(economics, day).values())


def test_the_weekly_pack_is_built_on_one_worker_and_uploaded_by_another_task(celery):
    stack, client, economics, _ = celery
    week = economics.window.review_week

    run = _run(client, WEEKLY, {"week": str(week)})

    assert run.state == "success", states(client, WEEKLY, run)
    listing = stack.aws_client()("s3").list_objects_v2(Bucket=stack.logs_bucket, Prefix=f"reports/weekly/{week}/")
    assert len(listing["Contents"]) == 4


def test_a_failed_refresh_is_rolled_back(celery):
    stack, client, _, _ = celery
    bundles = [baseline.sample_bundle_id(release) for release in ("v2", "v3")]
    fleet = provision_fleet(stack, client, "celery-rollout", bundles[0])
    scale(stack, fleet, 2)
    plan_refresh_failure(stack, fleet)

    conf = {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug, "bundle_id": bundles[1], "strategy": "refresh"}
    conf |= QUICK_VERDICT
    run = _run(client, ROLLOUT, conf)

    assert run.state == "failed"
    found = states(client, ROLLOUT, run)
    assert (found["judge_refresh"], found["roll_back"], found["wait_for_roll_back"]) == (
        "failed",
        "success",
        "success",
    )
    pointer = stack.aws_client()("ssm").get_parameter(Name=fleet.active_bundle)["Parameter"]["Value"]
    assert pointer == f"bundles/{bundles[0]}"


def test_tasks_ran_on_both_workers(celery):
    _, client, _, _ = celery
    hosts = {
        ti["hostname"] for dag_id, run_id in RUNS for ti in client.task_instances(dag_id, run_id) if ti.get("hostname")
    }
    assert hosts == {"w1", "w2"}
    # which task of the first economics run ran where, kept for the reader
    dag_id, run_id = next(run for run in RUNS if run[0] == ECONOMICS)
    placed = sorted(
        (ti["start_date"] or "", ti["task_id"], ti["hostname"]) for ti in client.task_instances(dag_id, run_id)
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "celery-economics-workers.txt").write_text(
        f"{dag_id} {run_id}\n" + "".join(f"{task:<24} {host}\n" for _, task, host in placed)
    )


def test_a_worker_killed_mid_compute_leaves_the_whole_day_or_nothing(celery):
    stack, client, economics, events = celery
    day = economics.window.last_day - timedelta(days=1)  # in the seeded history: its rows are the "before"
    before = published(economics, day)
    run = client.trigger(ECONOMICS, {"day": day.isoformat()})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        compute = next(ti for ti in client.task_instances(ECONOMICS, run.run_id) if ti["task_id"] == "compute")
        if compute["state"] == "running" and compute.get("hostname"):
            break
        time.sleep(0.2)
    victim = stack.components[f"worker-{compute['hostname']}"]
    os.killpg(victim.process.pid, signal.SIGKILL)

    run = client.wait_for_run(ECONOMICS, run.run_id, timeout=400, poll=2)

    assert run.state in ("success", "failed")
    after = published(economics, day)
    assert after == before or all(after[name] for name in ("ai_usage_daily", "ai_margin_daily", "ai_cost_daily"))
    if run.state == "success":
        computed = client.xcom(ECONOMICS, run.run_id, "compute")
        assert computed["location"].endswith("/try-2")  # the retry computed into a fresh folder
        assert {name: len(after[name]) for name in warehouse.TABLES} == computed["tables"]
    assert any(f"worker-{compute['hostname']} exited" in event for event in events)  # and was brought back
