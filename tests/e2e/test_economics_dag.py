"""ai_economics_daily on the real services: a day publishes and re-runs identically, a
bad ledger fails the gate and publishes nothing anywhere, and a backfill of a range
runs one day after the other."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from include.economics import ledger, warehouse

pytestmark = pytest.mark.e2e
DAG = "ai_economics_daily"


def _run(client, day):
    run = client.trigger(DAG, {"day": day.isoformat()})
    return client.wait_for_run(DAG, run.run_id, timeout=300, poll=1)


def _published(economics, day):
    engine = sa.create_engine(f"sqlite:///{economics.warehouse_path}")
    return {name: warehouse.read_days(engine, name, day, day).to_dict("records") for name in warehouse.TABLES}


def _s3_keys(stack, day):
    listing = stack.aws_client()("s3").list_objects_v2(Bucket=stack.logs_bucket, Prefix="economics/")
    return [o["Key"] for o in listing.get("Contents", []) if f"day={day}" in o["Key"]]


def test_a_day_publishes_everywhere_and_a_rerun_replaces_it_identically(stack, client, economics):
    day = economics.window.last_day

    assert _run(client, day).state == "success"
    first = _published(economics, day)
    assert _run(client, day).state == "success"

    assert _published(economics, day) == first
    assert len(first["ai_cost_daily"]) > 100
    assert {a["dimension"] for a in first["ai_anomalies"]} >= {"feature:video-effects", "model:claude-sonnet-4"}
    assert len(_s3_keys(stack, day)) == len(warehouse.TABLES)
    assert (economics.run_dir(day) / "economics.lp").exists()


def test_a_bad_ledger_fails_the_gate_and_publishes_nothing(stack, client, economics):
    day = economics.window.first_day  # not in the seeded warehouse history
    engine = sa.create_engine(f"sqlite:///{economics.ledger_path}")
    bad = {
        "request_id": "bad-cache-1",
        "user_id": 1,
        "feature_name": "chat",
        "model_name": "gpt-4.1",
        "input_tokens": 100,
        "cached_input_tokens": 500,
        "output_tokens": 10,
        "reasoning_tokens": None,
        "total_tokens": 110,
        "estimated_cost": 0,
        "request_duration_ms": 5,
        "success": True,
        "error_type": None,
        "release": "x",
        "created_at": datetime.combine(day, datetime.min.time()) + timedelta(hours=5),
    }
    with engine.begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), [bad])

    run = _run(client, day)

    assert run.state == "failed"
    log = "\n".join(client.task_log_lines(DAG, run.run_id, "compute", 1))
    assert "The data-quality gate failed 1 critical expectation(s): cached_input_tokens <= input_tokens" in log
    assert "bad-cache-1" in log
    assert "Nothing was published" in log
    states = {t["task_id"]: t["state"] for t in client.task_instances(DAG, run.run_id)}
    assert states["compute"] == "failed"
    assert {states[t] for t in ("publish_warehouse", "export_s3", "export_influx", "send_alerts")} == {
        "upstream_failed"
    }
    assert all(rows == [] for rows in _published(economics, day).values())
    assert _s3_keys(stack, day) == []


def test_a_backfill_of_a_range_runs_each_day(stack, client, economics):
    first = economics.window.first_day + timedelta(days=1)
    # logical dates are the 02:00 schedule; each run computes the day before it
    client.backfill(
        DAG,
        f"{first + timedelta(days=1)}T02:00:00+00:00",
        f"{first + timedelta(days=2)}T02:00:00+00:00",
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = [r for r in client.list_runs(DAG) if r.run_id.startswith("backfill__")]
        if len(runs) == 2 and all(r.state in ("success", "failed") for r in runs):
            break
        time.sleep(2)

    assert sorted(r.state for r in runs) == ["success", "success"]
    for day in (first, first + timedelta(days=1)):
        assert _published(economics, day)["ai_usage_daily"], f"{day} was not published"
