"""ai_economics_daily on the real services: a day publishes and re-runs identically, a
bad ledger fails the gate and publishes nothing anywhere, and a backfill of a range
runs one day after the other."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from devstack import synthetic
from include.economics import warehouse
from tests.e2e.conftest import stored
from tests.e2e.helpers import plant_bad_ledger_row, published, run_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.services]
DAG = "ai_economics_daily"


def _run(client, day):
    return run_to_end(client, DAG, {"day": day.isoformat()})


def _published(economics, day):
    return published(economics, day)


def _s3_keys(stack, day):
    listing = stack.aws_client()("s3").list_objects_v2(Bucket=stack.logs_bucket, Prefix="economics/")
    return [o["Key"] for o in listing.get("Contents", []) if f"day={day}" in o["Key"]]


def test_a_day_publishes_everywhere_and_a_rerun_replaces_it_identically(stack, client, economics):
    day = economics.window.last_day

    run = _run(client, day)
    assert run.state == "success"
    first = _published(economics, day)
    rerun = _run(client, day)
    assert rerun.state == "success"

    assert _published(economics, day) == first
    assert len(first["ai_cost_daily"]) > 100
    assert {a["dimension"] for a in first["ai_anomalies"]} >= {"feature:video-effects", "model:claude-sonnet-4"}
    # each anomaly names the release its change started with: the burn came with the last
    # day's release, image-gen's latency with the one shipped on the review week's Monday
    releases = {(a["signal"], a["dimension"]): a["release"] for a in first["ai_anomalies"]}
    assert releases[("tokens", "feature:video-effects")] == synthetic.ANOMALY_RELEASE
    assert releases[("latency", "feature:image-gen")] == synthetic.REGRESSION_RELEASE
    said = client.outcomes(DAG, run.run_id)["send_alerts"]
    assert any("] Latency anomaly on feature:image-gen" in line for line in said), said
    assert any(f"release {synthetic.REGRESSION_RELEASE} (owner creative-ai)" in line for line in said)
    assert any(line.startswith("[CRITICAL] Revenue down") and "(owner growth)" in line for line in said)
    assert any(" plan renewals failed on " in line for line in said)
    # the re-run finds the same alerts and sends none of them again
    assert client.outcomes(DAG, rerun.run_id)["send_alerts"][0].endswith(f": 0 sent, {len(said) - 1} not sent now")
    assert len(_s3_keys(stack, day)) == len(warehouse.TABLES)
    files = stored(stack, client.xcom(DAG, rerun.run_id, "compute")["location"])
    assert {"_manifest.json", "economics.lp", "gx_validation.json", "summary.json"} <= set(files)


def test_a_bad_ledger_fails_the_gate_and_publishes_nothing(stack, client, economics):
    day = economics.window.first_day  # not in the seeded warehouse history
    bad = plant_bad_ledger_row(economics, day)

    run = _run(client, day)

    assert run.state == "failed"
    log = "\n".join(client.task_log_lines(DAG, run.run_id, "compute", 1))
    assert "The data-quality gate failed 1 critical expectation(s): cached_input_tokens <= input_tokens" in log
    assert bad in log
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
