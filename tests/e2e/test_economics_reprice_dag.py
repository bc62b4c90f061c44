"""A back-dated price on the real services: ai_price_catalogue accepts the change and
updates its asset, ai_economics_reprice runs on it and backfills ai_economics_daily over
exactly the days the new price covers, and those days' cost changes while the days
around them keep theirs."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest

from devstack.demo import wait_for_dag
from tests.e2e.helpers import published, run_to_end

pytestmark = [pytest.mark.e2e, pytest.mark.services]
MODEL = "gpt-4.1"


def _cost(economics, day) -> Decimal:
    [row] = [r for r in published(economics, day)["ai_model_daily"] if r["model_name"] == MODEL]
    return Decimal(str(row["cost_usd"]))


def _runs_with_reason(client, dag_id: str, timeout: float, count: int):
    """The backfill's runs (they carry the change as their reason), once they have ended."""
    deadline = time.monotonic() + timeout
    while True:
        runs = [r for r in client.list_runs(dag_id) if str(r.conf.get("reason", "")).startswith("price catalogue:")]
        if len(runs) >= count and all(r.state in ("success", "failed") for r in runs):
            return runs
        if time.monotonic() > deadline:
            raise AssertionError(f"the reprice's runs of {dag_id} did not end in {timeout:.0f}s: {runs}")
        time.sleep(2)


def test_a_back_dated_price_reprices_exactly_the_days_it_covers(stack, client, economics):
    for dag_id in ("ai_price_catalogue", "ai_economics_reprice"):
        wait_for_dag(client, dag_id)
        client.set_paused(dag_id, False)
    # the version a change is compared with (a scheduled run may accept it first: same result)
    assert run_to_end(client, "ai_price_catalogue", {}).state == "success"
    last = economics.window.last_day
    first_day, last_day = last - timedelta(days=5), last - timedelta(days=4)
    days = [first_day - timedelta(days=1), first_day, last_day, last_day + timedelta(days=1)]
    before = {day: _cost(economics, day) for day in days}
    catalogue = economics.catalogue_path
    original = catalogue.read_text()
    # twice gpt-4.1's prices on those two days, its usual prices again from the day after
    doubled = f"{MODEL},{first_day},USD,0.004,0.001,0.016,,,,"
    usual = f"{MODEL},{last_day + timedelta(days=1)},USD,0.002,0.0005,0.008,,,,"
    catalogue.write_text(f"{original}{doubled}\n{usual}\n")
    try:
        changed = run_to_end(client, "ai_price_catalogue", {})
        assert changed.state == "success"
        [backfill_a, backfill_b] = sorted(
            _runs_with_reason(client, "ai_economics_daily", 420, 2), key=lambda r: r.run_id
        )
    finally:
        catalogue.write_text(original)

    assert (backfill_a.state, backfill_b.state) == ("success", "success")
    reason = backfill_a.conf["reason"]
    assert f"{MODEL} from {first_day} added" in reason
    assert f"({first_day} to {last_day} repriced)" in reason
    [reprice] = [r for r in client.list_runs("ai_economics_reprice") if r.state == "success"]
    assert reprice.run_id in reason
    log = "\n".join(client.task_log_lines("ai_economics_daily", backfill_a.run_id, "resolve_day", 1))
    assert "again: price catalogue:" in log
    after = {day: _cost(economics, day) for day in days}
    for day in (first_day, last_day):  # every gpt-4.1 token at twice the price
        assert abs(after[day] - 2 * before[day]) <= Decimal("0.00001"), (day, before[day], after[day])
    for day in (days[0], days[-1]):
        assert after[day] == before[day], day
