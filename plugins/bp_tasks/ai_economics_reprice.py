"""Task bodies of ``ai_economics_reprice``: the days a price catalogue change touches, and
the backfill of ``ai_economics_daily`` that recomputes them (``POST /api/v2/backfills``
through the ``airflow_api`` connection, :func:`bp_tasks.common.airflow_api`)."""

from __future__ import annotations

import logging
import time
from datetime import date

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from bp_tasks.common import RequestRefused, airflow_api, skipped
from bp_tasks.economics_settings import PRICE_CATALOGUE

log = logging.getLogger("bp.economics")

ECONOMICS_DAG = "ai_economics_daily"


@task(multiple_outputs=False)
def plan_reprice(triggering_asset_events=None) -> dict:
    """The days the triggering change(s) price differently (``ai_price_catalogue`` worked
    them out against the version it had accepted): one range, first to last."""
    events = list((triggering_asset_events or {}).get(PRICE_CATALOGUE, []))
    if not events:
        raise RequestRefused(
            "No price catalogue change triggered this run: ai_economics_reprice runs when ai_price_catalogue "
            "accepts one. To recompute days by hand, backfill ai_economics_daily. Nothing was started."
        )
    said = "; ".join(event.extra["change"] for event in events)
    ranges = [(e.extra["first_day"], e.extra["last_day"]) for e in events if e.extra.get("first_day")]
    if not ranges:
        raise skipped(f"Price catalogue change ({said}): no past day is priced differently.")
    first, last = min(first for first, _ in ranges), max(last for _, last in ranges)
    log.info("Price catalogue change (%s): %s to %s to recompute", said, first, last)
    return {"first": first, "last": last, "reason": f"price catalogue: {said}"}


#: How long start_backfill waits for another backfill of the economics to finish.
WAIT_FOR_OTHER_BACKFILL_SECONDS = 1800


def _running_backfill(client, start: str, end: str, deadline: float) -> dict | None:
    """The running backfill of our range (an earlier try's), or None once no backfill of
    ``ai_economics_daily`` runs: Airflow allows one at a time, so another one is waited for."""
    while True:
        running = [b for b in client.backfills(ECONOMICS_DAG) if not b.get("completed_at")]
        ours = [b for b in running if b["from_date"][:10] == start[:10] and b["to_date"][:10] == end[:10]]
        if ours or not running:
            return ours[0] if ours else None
        if time.monotonic() > deadline:
            raise AirflowException(
                f"Backfill {running[0]['id']} of {ECONOMICS_DAG} is still running after "
                f"{WAIT_FOR_OTHER_BACKFILL_SECONDS // 60} minutes; this task is retried. Nothing was recomputed yet."
            )
        log.info("Backfill %s of %s is running: waiting for it to finish", running[0]["id"], ECONOMICS_DAG)
        time.sleep(15)


@task(multiple_outputs=False)
def start_backfill(plan: dict, dag_run=None) -> dict:
    """One backfill of ``ai_economics_daily`` over the days, oldest first, re-running those
    already computed; each run carries the change as its ``reason``. Another backfill of
    it is waited for (Airflow runs one at a time); a retry finds the backfill an earlier
    try started instead of starting another."""
    from include.cli.airflow_client import AirflowApiError
    from include.economics.calendar import daily_logical_date

    first, last = date.fromisoformat(plan["first"]), date.fromisoformat(plan["last"])
    start, end = daily_logical_date(first).isoformat(), daily_logical_date(last).isoformat()
    client = airflow_api()
    reason = f"{plan['reason']} (run {dag_run.run_id} of {dag_run.dag_id})"
    deadline = time.monotonic() + WAIT_FOR_OTHER_BACKFILL_SECONDS
    while (backfill := _running_backfill(client, start, end, deadline)) is None:
        try:
            backfill = client.backfill(ECONOMICS_DAG, start, end, dag_run_conf={"reason": reason})
            break
        except AirflowApiError as error:
            if error.status != 409:  # 409: another backfill started meanwhile
                raise AirflowFailException(
                    f"The backfill of {ECONOMICS_DAG} from {first} to {last} could not start: {error}. "
                    "Nothing was recomputed."
                ) from None
    log.info(
        "Backfill %s of %s: %s to %s, oldest first, because %s", backfill["id"], ECONOMICS_DAG, first, last, reason
    )
    return {"backfill_id": backfill["id"], "first": plan["first"], "last": plan["last"], "reason": reason}
