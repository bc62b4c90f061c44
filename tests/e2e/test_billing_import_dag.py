"""ai_billing_import on the real services, against the providers' double (it bills the
ledger's usage at the providers' own prices): a day whose bill matches passes; a cached
price mistake planted in our catalogue shows as a cached-cost drift of that model, with
an alert naming it, while the other models still match."""

from __future__ import annotations

from datetime import timedelta

import pytest

from devstack.demo import wait_for_dag
from include.economics import warehouse
from tests.e2e.helpers import run_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.services]
DAG = "ai_billing_import"
MODEL = "gpt-4.1"


def _reconciliation(economics, day) -> dict[tuple[str, str], dict]:
    frame = warehouse.read_days(economics.warehouse_engine(), "ai_billing_reconciliation", day, day)
    return {(row["provider"], row["model_name"]): row for row in frame.to_dict("records")}


def test_a_matching_bill_passes_and_a_wrong_cached_price_drifts_in_its_cached_cost(stack, client, economics):
    wait_for_dag(client, DAG)
    client.set_paused(DAG, False)
    day = economics.window.last_day - timedelta(days=8)

    assert run_to_end(client, DAG, {"day": day.isoformat()}).state == "success"
    matched = _reconciliation(economics, day)
    assert {("openai", MODEL), ("openai", "gpt-4.1-mini"), ("anthropic", "claude-sonnet-4")} <= set(matched)
    assert {key: row["status"] for key, row in matched.items()} == dict.fromkeys(matched, "ok")
    assert matched[("openai", MODEL)]["our_cached_tokens"] == matched[("openai", MODEL)]["billed_cached_tokens"] > 0

    catalogue = economics.catalogue_path
    original = catalogue.read_text()
    [row] = [line for line in original.splitlines() if line.startswith(f"{MODEL},")]
    fields = row.split(",")
    catalogue.write_text(
        original.replace(row, ",".join([*fields[:4], fields[3], *fields[5:]]))
    )  # cached at input price
    try:
        assert run_to_end(client, "ai_economics_daily", {"day": day.isoformat()}).state == "success"
        run = run_to_end(client, DAG, {"day": day.isoformat()})
    finally:
        catalogue.write_text(original)
        run_to_end(client, "ai_economics_daily", {"day": day.isoformat()})

    assert run.state == "success"
    drifted = _reconciliation(economics, day)
    gpt = drifted[("openai", MODEL)]
    assert gpt["status"] == "drift"
    assert gpt["drifting"].startswith("cached cost ")
    assert "input" not in gpt["drifting"]
    assert "output" not in gpt["drifting"]
    assert gpt["our_cached_tokens"] == gpt["billed_cached_tokens"]
    assert {key: r["status"] for key, r in drifted.items() if key != ("openai", MODEL)} == dict.fromkeys(
        (key for key in drifted if key != ("openai", MODEL)), "ok"
    )
    log = "\n".join(client.task_log_lines(DAG, run.run_id, "send_alerts", 1))
    assert f"openai bill for {MODEL} on {day}: drifts from our cost" in log
    assert "cached cost" in log
