"""
### AI economics, daily: cost, margin, anomalies - gated by data quality

Every morning at 02:00 UTC, for the previous UTC day (or the `day` param):

1. **resolve_day** - the day to compute; a day not yet over is refused.
2. **compute** - one streamed `GROUP BY` of the `ai_ledger` connection's day (never the
   raw requests), priced by the catalogue (Variable `ai_price_catalogue`); the per-user
   level goes to its Parquet file a chunk at a time, so memory does not grow with the
   day; revenue with FX; GPU infrastructure cost (Variable `infra_cost_source`:
   `cost_explorer`, `estimate`, `none`); margin per plan and `all`; anomalies against a
   same-weekday robust baseline; then the **Great Expectations gate** (the ledger's
   checks counted in one aggregate pass while the per-user level is built). A failed
   critical expectation fails the run here, with the expectation, the count and example
   `request_id`s in the log and `gx_validation.json` in the run folder: **nothing is
   published**.
3. **publish_warehouse** - replaces the day, in one transaction, in the `ai_warehouse` tables
   (`ai_cost_daily`, `ai_feature_daily`, `ai_model_daily`, `ai_plan_daily`,
   `ai_usage_daily`, `ai_margin_daily`, `ai_anomalies`) and updates the asset.
4. **export_s3** (Parquet under Variable `economics_s3_uri`) and **export_influx**
   (InfluxDB through `influxdb_default`, or line protocol in the run folder).
5. **send_alerts** - anomalies, margin under Variable `margin_floor_pct`, cost drift
   against the app's estimate, failed payments.

Re-running a day replaces it everywhere. Backfill a range with
`airflow backfill create --dag-id ai_economics_daily --from-date ... --to-date ...`;
`ai_economics_reprice` does so by itself when a price row changes days already computed.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from bp_tasks import ai_economics_daily as tasks
from bp_tasks.economics_settings import day_param, economics_default_args
from bp_tasks.params import ECONOMICS_START, aws_conn_id_param, form_pattern
from include.economics.calendar import DAILY_SCHEDULE


@dag(
    schedule=DAILY_SCHEDULE,
    start_date=ECONOMICS_START,
    catchup=True,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["economics", "daily", "finance"],
    default_args=economics_default_args("ai_economics_daily"),
    params={
        "day": day_param("The day to compute, YYYY-MM-DD (empty: the day before the scheduled run)."),
        "aws_conn_id": aws_conn_id_param("For Cost Explorer / CloudWatch, S3 and alerts."),
        "reason": Param(
            None,
            type=["null", "string"],
            pattern=form_pattern(r"^[^\x00-\x1f]+$"),
            maxLength=500,
            title="Reason",
            description="Why the day is computed again (a reprice names the price catalogue change); logged.",
        ),
    },
)
def ai_economics_daily():
    computed = tasks.compute(tasks.resolve_day())
    published = tasks.publish_warehouse(computed)
    published >> [tasks.export_s3(computed), tasks.export_influx(computed), tasks.send_alerts(computed)]


ai_economics_daily()
