"""
### GPU bundle rollout: a model bundle reaches a fleet, verified, or is rolled back

Replaces seed 004's hand runbook (activate → bake → roll the ASG) and `apply-comfyui-bundle.yml`:

1. **validate_request** → **check_bundle**: every asset in the models bucket at its size;
2. **acquire_lock**: the fleet's change lock (one rollout, AMI promotion or fleet apply at a time);
3. **read_pointer** → **move_pointer** (refused if the pointer moved since) → **confirm_pointer**;
4. by **strategy**: `pointer_only` (nodes pick it up at their next boot); `dev_node`
   (**apply_on_dev_node** by Run Command, whose parameters are SSM parameter names, never
   shell text; **check_dev_node** keeps the output in `asset-sync/` and asks the node);
   `refresh` (none if the ASG is empty; else **start_refresh** → **judge_refresh** →
   **verify_fleet_bundle**: every InService node reports the bundle);
   `bake_and_refresh` (**bake_ami** runs `gpu_ami_build_and_bake` first);
5. **judge_refresh**: at each checkpoint and at the end, a bake window (waited in the
   triggerer), then the fleet's `ComfyUI/Workers` metrics against the baseline before the
   run: *failed* (ErrorRate, JobProcessingP50, LeaseExpiredCount over their limits) stops
   the refresh and rolls back; *inconclusive* (fewer jobs than `min_jobs`) stops it and
   **approve_going_on** asks a person (Approve: **continue_refresh** → **judge_continued**;
   Reject: roll back); *success* lets it go on. Each analysis is a table in the log and
   in the audit record;
6. **roll_back** on any failure: the pointer restored (only over this run's own write),
   the refresh cancelled, replaced nodes refreshed back (`auto_rollback`), a critical alert;
7. **release_lock**, **record_audit** (one immutable record in `audit/rollouts/`) →
   **rollout_outcome**: the run's verdict, failed with the rollback paragraph.
"""

from __future__ import annotations

from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag

from bp_aws.operators.autoscaling import StartInstanceRefreshOperator
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from bp_aws.sensors.autoscaling import InstanceRefreshSensor
from bp_aws.sensors.ssm_parameters import SsmParameterSensor
from bp_tasks import fleet_lock, params, rollout_verdict
from bp_tasks import gpu_bundle_rollout as tasks
from bp_tasks.params import PLATFORM_START, SAFE_TO_RETRY
from include.amis.build import DAG_ID as AMI_DAG
from include.rollouts.rollout import bake_run_id

AWS = "{{ params.aws_conn_id }}"


@dag(
    schedule=None,
    start_date=PLATFORM_START,
    catchup=False,
    max_active_runs=4,  # different fleets roll out in parallel; acquire_lock serializes one fleet
    doc_md=__doc__,
    tags=["platform", "bundle", "rollout"],
    default_args={"owner": "platform", "retries": 0},
    params=params.rollout_params(),
)
def gpu_bundle_rollout():
    request = tasks.validate_request()
    checked = tasks.check_bundle(request)
    lock = tasks.acquire_lock(request)
    current = tasks.read_pointer(request)
    move = PutSsmParameterOperator(
        task_id="move_pointer",
        aws_conn_id=AWS,
        name=request["active_bundle"],
        value=request["pointer_value"],
        expected_version=current["version"],
        description="Active bundle of the fleet (gpu_bundle_rollout)",
    )
    confirm = SsmParameterSensor(
        task_id="confirm_pointer",
        aws_conn_id=AWS,
        name=request["active_bundle"],
        equals=request["pointer_value"],
        deferrable=True,
        poke_interval=5,
        timeout=300,
        **SAFE_TO_RETRY,
    )
    path = tasks.strategy_path(request)

    apply_on_dev_node = SsmRunCommandOperator(
        task_id="apply_on_dev_node",
        aws_conn_id=AWS,
        document_name=request["apply_document"],
        run_command_kwargs=request["dev_node_command"],
        deferrable=True,
        waiter_delay=5,
        waiter_max_attempts=720,
        **SAFE_TO_RETRY,
    )
    dev_node_checked = tasks.check_dev_node(request, apply_on_dev_node.output)

    # bake_and_refresh
    bake = TriggerDagRunOperator(
        task_id="bake_ami",
        trigger_dag_id=AMI_DAG,
        trigger_run_id=bake_run_id("{{ run_id }}"),  # the fleet lock lets this run act under ours
        reset_dag_run=True,  # a cleared bake_ami runs that bake again
        conf={"fleet_stage": "{{ params.fleet_stage }}", "fleet_slug": "{{ params.fleet_slug }}", "mode": "bake"}
        | {"aws_conn_id": AWS},
        wait_for_completion=True,
        deferrable=True,
        poke_interval=10,
        failed_states=["failed"],
    )

    # refresh
    has_instances = tasks.fleet_has_instances()
    start = StartInstanceRefreshOperator(
        task_id="start_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        preferences=tasks.refresh_preferences_of(request, current),
        wait_for_completion=False,
    )
    judged, judged_again, verdict = rollout_verdict.judged_refresh(request, current, start.output, AWS)
    fleet_verified = tasks.verify_fleet_bundle()

    undo = tasks.roll_back(request, current)
    wait_back = InstanceRefreshSensor(
        task_id="wait_for_roll_back",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        instance_refresh_id=undo["back_refresh_id"],
        deferrable=True,
        poke_interval=5,
        timeout=6 * 3600,
        **SAFE_TO_RETRY,
    )
    released = fleet_lock.release_lock(request)
    audit = tasks.record_audit(request, current)

    request >> checked >> lock >> current >> move >> confirm >> path
    path >> [apply_on_dev_node, bake, has_instances]
    apply_on_dev_node >> dev_node_checked
    bake >> has_instances >> start >> judged
    [judged, judged_again] >> fleet_verified
    # every task after which the fleet may have changed: roll_back watches them all
    [move, confirm, apply_on_dev_node, dev_node_checked, bake, has_instances, start, *verdict, fleet_verified] >> undo
    undo >> tasks.refreshing_back(undo) >> wait_back
    [undo, wait_back, checked, lock] >> released >> audit >> tasks.rollout_outcome(request)


gpu_bundle_rollout()
