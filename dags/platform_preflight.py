"""
### Platform preflight: deploy blockers, before anyone builds or rolls out

Checks what the infrastructure review (seed 003) found blocking go-live, and reports
**every** problem as one table in the `check_deploy_blockers` task log:

| check | critical when |
|---|---|
| fleet secret `/bp/fleets/<stage>/fleet-secret` | missing or `CHANGE_ME_AFTER_DEPLOY` in a stage with fleets |
| models bucket `/bp/models/bucket` | missing, or the bucket it names does not exist |
| AMI pointer `/bp/ami/fleets/<stage>/<slug>` | names an image that is not `available` |
| active bundle `/bp/fleets/<stage>/<slug>/active_bundle` | names a manifest that is not in the models bucket |
| desired config `/bp/fleets/<stage>/<slug>/desired_config` | is refused by the fleet templates |

The run fails if anything is critical; warnings are reported and the run succeeds.
It only reads: it is safe to run at any time, from the UI or from CI
(`python -m include.cli.trigger platform_preflight --conf '{"fleet_stage": "staging"}' --wait`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag

from bp_tasks import platform_preflight as tasks
from bp_tasks.params import PLATFORM_START, aws_conn_id_param, fleet_scope_params


@dag(
    schedule=None,
    start_date=PLATFORM_START,
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["platform", "preflight", "read-only"],
    default_args={"owner": "platform", "retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    params={
        **fleet_scope_params(),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def platform_preflight():
    tasks.check_deploy_blockers(tasks.validate_request())


platform_preflight()
