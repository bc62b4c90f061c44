"""
### Weekly review pack: the week's AI economics for product and finance

Every Monday at 06:00 UTC, for the ISO week just over (or the `week` param, e.g.
`2026-W44`), against the week before:

1. **resolve_week** - the week to review; a malformed week or one not over is refused.
2. **check_coverage** - which of its seven days `ai_economics_daily` has published;
   the missing ones are named. With `require_all_days` the run stops here.
3. **read_fleet_metrics** - CloudWatch `ComfyUI/Workers` over the week for each fleet
   in Variable `economics_fleets`: queue depth, active workers, error rate, Spot
   interruptions.
4. **build_pack** - headline (AI cost, GPU infrastructure, revenue, margin, margin %,
   requests, DAU, failure rate, p95 latency, each with its week-over-week change),
   model mix, cost per feature and per plan (and per weekly user), regressions,
   anomalies (did they persist?), GPU fleets, data quality, and the actions they call
   for. Every figure comes from the warehouse tables; thresholds are Variable
   `weekly_review_rules`. Writes one self-contained HTML page, its PDF, a Markdown
   summary and `review.json` to `<economics_output_dir>/weekly_review_pack/<week>/`.
5. **publish_pack** - uploads them to `s3://bp-logs-<account>/reports/weekly/<week>/`.
6. **announce** - the summary with presigned links (7 days) to the `[bp] report_topic`
   SNS topic (default `bp-reports`).

Re-running a week rebuilds and replaces its pack.
"""

from __future__ import annotations

from airflow.sdk import Param, dag

from bp_aws.notifiers.ops_alert import OpsAlertNotifier
from bp_tasks import weekly_review_pack as tasks
from bp_tasks.common import RequestRefused
from bp_tasks.params import ECONOMICS_START, aws_conn_id_param
from include.economics.calendar import ISO_WEEK_PATTERN
from include.form_params import form_pattern


@dag(
    schedule="0 6 * * 1",
    start_date=ECONOMICS_START,
    catchup=False,
    max_active_runs=2,
    doc_md=__doc__,
    tags=["economics", "weekly", "finance", "report"],
    default_args={
        "owner": "data-finance",
        "retries": 1,
        "on_failure_callback": OpsAlertNotifier(
            severity="warning",
            title="weekly_review_pack failed",
            stage="{{ var.value.get('economics_alert_stage', 'production') }}",
            not_incidents=(RequestRefused,),
        ),
    },
    params={
        "week": Param(
            None,
            type=["null", "string"],
            pattern=form_pattern(ISO_WEEK_PATTERN),
            title="ISO week",
            description="The week to review, e.g. 2026-W44 (empty: the ISO week before the run).",
        ),
        "require_all_days": Param(
            False,
            type="boolean",
            title="Require all 7 days",
            description="Fail instead of building a pack that says which days are missing.",
        ),
        "aws_conn_id": aws_conn_id_param("For CloudWatch, S3 and SNS."),
    },
)
def weekly_review_pack():
    coverage = tasks.check_coverage(tasks.resolve_week())
    built = tasks.build_pack(coverage, tasks.read_fleet_metrics(coverage))
    tasks.announce(built, tasks.publish_pack(built))


weekly_review_pack()
