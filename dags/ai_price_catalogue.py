"""
### AI price catalogue: accept a change and say which prices moved

Every hour, and whenever it is triggered (after the catalogue was edited):

1. **publish_change** - reads the catalogue the economics use (Variable
   `ai_price_catalogue`) and validates it: a bad one fails here, naming the line, and is
   not accepted. It compares it with the version accepted last (object storage): when a
   row was added, edited or removed, the new version is accepted and the asset
   `ai_price_catalogue` is updated with the changed rows and the past days some model is
   now priced differently on (compared day by day, at most Variable `reprice_max_days`,
   default 90, back). Unchanged: the task is skipped and nothing else happens. The first
   version ever seen is accepted as it is.

`ai_economics_reprice` runs on that asset and recomputes the past days the change prices.
"""

from __future__ import annotations

from airflow.sdk import dag

from bp_tasks import ai_price_catalogue as tasks
from bp_tasks.economics_settings import economics_default_args
from bp_tasks.params import ECONOMICS_START


@dag(
    schedule="@hourly",
    start_date=ECONOMICS_START,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["economics", "finance"],
    default_args=economics_default_args("ai_price_catalogue"),
)
def ai_price_catalogue():
    tasks.publish_change()


ai_price_catalogue()
