"""
### AI billing: the providers' bills, reconciled with our cost

Every morning at 04:00 UTC (after `ai_economics_daily`), for the previous UTC day (or the
`day` param) and the two days before it (a bill not out yet is asked for again):

1. **resolve_days** - the days; a day not yet over is refused.
2. **import_bills** - each provider's own usage and cost per model and account:
   OpenAI's usage and costs API (connection `openai_admin`), Anthropic's usage and cost
   report (`anthropic_admin`), AWS Cost Explorer for Bedrock (when Variable
   `bedrock_model_names` maps its model names to the catalogue's), and any
   `billing/<provider>/<day>.csv` in the logs bucket. A provider with nothing for a day
   yet is "bill not yet available", never a drift.
3. **reconcile** - replaces each day's `ai_billing_daily` (the lines, in their currency
   and in USD) and, where the day's economics are published, `ai_billing_reconciliation`:
   per provider and model, our cost against the bill, and each token class (input, cached,
   output) in tokens and in cost at our catalogue's rates. A model we don't price is
   unpriced spend; a bill in another currency is converted with the day's FX rate, or the
   run fails naming the currency.
4. **send_alerts** - a drift over Variable `billing_drift_threshold_pct` (default 2) names
   the model and the token class that drifts (warning); unpriced spend is critical.
"""

from __future__ import annotations

from airflow.sdk import dag

from bp_tasks import ai_billing_import as tasks
from bp_tasks.economics_settings import day_param, economics_default_args
from bp_tasks.params import ECONOMICS_START, aws_conn_id_param


@dag(
    schedule="0 4 * * *",
    start_date=ECONOMICS_START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["economics", "billing", "finance"],
    default_args=economics_default_args("ai_billing_import"),
    params={
        "day": day_param("The last day to import, YYYY-MM-DD (empty: the day before the scheduled run)."),
        "aws_conn_id": aws_conn_id_param("For Cost Explorer (Bedrock), the CSV bills in S3 and alerts."),
    },
)
def ai_billing_import():
    findings = tasks.reconcile(tasks.import_bills(tasks.resolve_days()))
    tasks.send_alerts(findings)


ai_billing_import()
