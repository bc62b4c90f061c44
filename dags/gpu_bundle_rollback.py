"""
### GPU bundle rollback: undo a rollout that has ended, by its run id

For the bad bundle found an hour after its rollout succeeded. Given the run id of a
`gpu_bundle_rollout` run (its audit record is in `audit/rollouts/<stage>/<slug>/`):

1. **validate_request**: the fleet, the run id and the analysis limits, before any AWS call;
2. **plan_rollback**: the rollout's audit record must say it succeeded and what the fleet
   ran before; the fleet's `active_bundle` pointer must still hold what that rollout set.
   If anyone moved it since, the rollback is refused, naming who (a newer rollout, or the
   SSM parameter's last writer): undoing the old rollout would undo their change too;
3. **roll_back_rollout**: a `gpu_bundle_rollout` run (`rollback__<this run id>`, strategy
   `refresh`, `rollback_of` = the run id) moves the pointer back under the fleet lock
   (checking the pointer again there), refreshes the nodes, judges them by their metrics
   at each checkpoint and verifies them - and rolls itself back if that fails. Its audit
   record links the two runs;
4. **rollback_outcome**: one line, the bundle the fleet runs again.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag

from bp_tasks import gpu_bundle_rollback as tasks
from bp_tasks import params as form
from include.rollouts.rollback import rollback_run_id


@dag(
    schedule=None,
    start_date=form.PLATFORM_START,
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["platform", "bundle", "rollout"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "fleet_stage": form.fleet_stage_param("The stage of the fleet the rollout changed."),
        "fleet_slug": form.fleet_slug_param(),
        "rollout_run_id": form.run_id_param(
            "Rollout run id", "The gpu_bundle_rollout run to undo, e.g. manual__2026-11-30T08:30:00+00:00."
        ),
        "checkpoint_percentages": form.checkpoint_percentages_param(),
        **form.analysis_params(),
        "aws_conn_id": form.aws_conn_id_param(),
    },
)
def gpu_bundle_rollback():
    request = tasks.validate_request()
    conf = tasks.plan_rollback(request)
    rolled_back = TriggerDagRunOperator(
        task_id="roll_back_rollout",
        trigger_dag_id="gpu_bundle_rollout",
        trigger_run_id=rollback_run_id("{{ run_id }}"),
        conf=conf,
        wait_for_completion=True,
        deferrable=True,
        poke_interval=10,
        failed_states=["failed"],
    )
    rolled_back >> tasks.rollback_outcome(conf)


gpu_bundle_rollback()
