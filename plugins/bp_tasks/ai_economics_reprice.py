"""Task bodies of ``ai_economics_reprice``: the days a price catalogue change touches, and
the backfill of ``ai_economics_daily`` that recomputes them (``POST /api/v2/backfills``
through the ``airflow_api`` connection: the api-server's URL, a user allowed to create
backfills)."""

from __future__ import annotations

import logging
from datetime import date

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from bp_tasks.common import RequestRefused
from bp_tasks.economics_settings import PRICE_CATALOGUE

log = logging.getLogger("bp.economics")

API_CONN = "airflow_api"
ECONOMICS_DAG = "ai_economics_daily"


def _api_client():
    from airflow.sdk import Connection

    from include.cli.airflow_client import AirflowClient

    conn = Connection.get(API_CONN)
    base = conn.host if "://" in (conn.host or "") else f"{conn.schema or 'http'}://{conn.host}:{conn.port}"
    return AirflowClient(base, username=conn.login, password=conn.password)


@task
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
        raise AirflowSkipException(f"Price catalogue change ({said}): no past day is priced differently.")
    first, last = min(first for first, _ in ranges), max(last for _, last in ranges)
    log.info("Price catalogue change (%s): %s to %s to recompute", said, first, last)
    return {"first": first, "last": last, "reason": f"price catalogue: {said}"}


@task
def start_backfill(plan: dict, dag_run=None) -> dict:
    """One backfill of ``ai_economics_daily`` over the days, oldest first, re-running those
    already computed; each run carries the change as its ``reason``. A retry finds the
    backfill an earlier try started instead of starting another."""
    from bp_tasks.ai_economics_daily import logical_date_of
    from include.cli.airflow_client import AirflowApiError

    first, last = date.fromisoformat(plan["first"]), date.fromisoformat(plan["last"])
    start, end = logical_date_of(first).isoformat(), logical_date_of(last).isoformat()
    client = _api_client()
    reason = f"{plan['reason']} (run {dag_run.run_id} of {dag_run.dag_id})"
    try:
        backfill = client.backfill(ECONOMICS_DAG, start, end, dag_run_conf={"reason": reason})
    except AirflowApiError as error:
        running = [b for b in client.backfills(ECONOMICS_DAG) if not b.get("completed_at")]
        same = [b for b in running if b["from_date"][:10] == start[:10] and b["to_date"][:10] == end[:10]]
        if not same:
            raise AirflowFailException(
                f"The backfill of {ECONOMICS_DAG} from {first} to {last} could not start ({error}). "
                "Another backfill of it may be running: clear this task once it has finished. Nothing was recomputed."
            ) from None
        backfill = same[0]
        log.info("Backfill %s was started by an earlier try", backfill["id"])
    log.info(
        "Backfill %s of %s: %s to %s, oldest first, because %s", backfill["id"], ECONOMICS_DAG, first, last, reason
    )
    return {"backfill_id": backfill["id"], "first": plan["first"], "last": plan["last"], "reason": reason}
