"""
### AI economics, repriced: past days recomputed when their prices change

Runs when `ai_price_catalogue` accepts a catalogue change (the asset
`ai_price_catalogue`); several changes accepted meanwhile make one run.

1. **plan_reprice** - the past days the change prices differently, as `ai_price_catalogue`
   worked them out (a row with the prices already in effect, or starting today or later,
   reprices nothing: skipped); several changes make one range, first day to last.
2. **start_backfill** - one backfill of `ai_economics_daily` over those days (`POST
   /api/v2/backfills` through the `airflow_api` connection), oldest first, re-running the
   days already computed; every run carries the change as its `reason` param, in its log.
   Each day is replaced everywhere, as any re-run replaces it.

Airflow runs one backfill of a DAG at a time: **start_backfill** waits for another one of
`ai_economics_daily` to finish first (up to 30 minutes, then it is retried).
"""

from __future__ import annotations

from airflow.sdk import dag

from bp_tasks import ai_economics_reprice as tasks
from bp_tasks.economics_settings import PRICE_CATALOGUE, economics_default_args
from bp_tasks.params import ECONOMICS_START


@dag(
    schedule=[PRICE_CATALOGUE],
    start_date=ECONOMICS_START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["economics", "finance"],
    default_args=economics_default_args("ai_economics_reprice"),
)
def ai_economics_reprice():
    tasks.start_backfill(tasks.plan_reprice())


ai_economics_reprice()
