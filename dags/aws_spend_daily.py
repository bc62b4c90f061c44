"""
### AWS spend: the whole bill of a day, with the cost hotspots named

Every morning at 05:00 UTC, for the previous UTC day (or the `day` param):

1. **resolve_day** - the day (a day not yet over is refused) and Variable
   `aws_daily_budgets` (`{"<stage>": {"<hotspot>" or "total": USD}}`), checked first.
2. **read_spend** - Cost Explorer's UnblendedCost per stage (cost-allocation tag `stage`)
   by service and usage type, the day and the 28 before it; the GPU instances by `fleet`
   tag; AWS Cost Anomaly Detection's anomalies of the day; AWS Budgets.
3. **publish** - replaces the day's `aws_spend_daily` rows (warehouse `ai_warehouse`), each
   line in its hotspot: NAT Gateway data processing, CloudWatch Logs ingestion, S3 and
   CloudFront data transfer out, EC2 GPU instances, other; writes `aws_spend` (per stage
   and hotspot) to InfluxDB when `influxdb_default` exists.
4. **send_alerts** - a hotspot over its budget (critical) or its robust baseline (warning
   from z 3.5, critical from 6), naming the usage type (and fleet) that grew and the likely
   cause from seed 003's risk register; an AWS anomaly is said in the finding it explains,
   or alerted alone; an AWS budget over its limit (or forecast over it). Each once per day.
"""

from __future__ import annotations

from airflow.sdk import dag

from bp_tasks import aws_spend_daily as tasks
from bp_tasks.economics_settings import day_param, economics_default_args
from bp_tasks.params import ECONOMICS_START, aws_conn_id_param


@dag(
    schedule="0 5 * * *",
    start_date=ECONOMICS_START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["economics", "aws", "finance"],
    default_args=economics_default_args("aws_spend_daily"),
    params={
        "day": day_param("The day to read, YYYY-MM-DD (empty: the day before the scheduled run)."),
        "aws_conn_id": aws_conn_id_param("For Cost Explorer, AWS Budgets and the alerts."),
    },
)
def aws_spend_daily():
    read = tasks.read_spend(tasks.resolve_day())
    tasks.publish(read)
    tasks.send_alerts(read)


aws_spend_daily()
