"""
### GPU bundle rollout: a model bundle reaches a fleet, verified, or is rolled back

Replaces seed 004's hand runbook (activate → bake → roll the ASG) and `apply-comfyui-bundle.yml`:

1. **validate_request** → **check_bundle**: every asset in the models bucket at its size;
2. **approve_rollout** (production, every strategy: a second person's Approve in the UI) →
   **acquire_lock**: the fleet's change lock (a setup: clearing any later task takes it again);
3. **read_pointer** → **move_pointer** (refused if the pointer moved since, or without a
   valid approval) → **confirm_pointer**: the fleet's `active_bundle`, or for `dev_node`
   the node's own (`/bp/devnodes/<stage>/<name>/active_bundle`: the fleet's never moves);
4. by **strategy**: `pointer_only` (nodes pick it up at their next boot); `dev_node`
   (**apply_on_dev_node** by Run Command, whose parameters are SSM parameter names, never
   shell text; **check_dev_node** keeps the output in `asset-sync/` and asks the node);
   `refresh` (none if the ASG is empty; else **start_refresh** → **judge_refresh** →
   **verify_fleet_bundle**: every InService node reports the bundle);
   `bake_and_refresh` (**bake_ami** runs `gpu_ami_build_and_bake` first);
5. **judge_refresh**: at each checkpoint and at the end, after a bake window, the fleet's
   `ComfyUI/Workers` metrics against the baseline before the run: *failed* (ErrorRate,
   the median job time, LeaseExpiredCount over their limits) stops and rolls back;
   *inconclusive* (fewer jobs than `min_jobs`) stops and **approve_going_on** asks a person
   (Approve: **continue_refresh** → **judge_continued**; Reject: roll back); *success* goes
   on. Each analysis is a table in the log and in the audit record;
6. **roll_back** on any failure: the pointer restored (only over this run's own write), the
   refresh cancelled, replaced nodes refreshed back (`auto_rollback`), a critical alert;
   **release_lock** (teardown), **record_audit** (`audit/rollouts/`) → **rollout_outcome**.
"""

from __future__ import annotations

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag

from bp_aws.operators.autoscaling import StartInstanceRefreshOperator
from bp_aws.operators.run_command import RunCommandOperator
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from bp_aws.sensors.autoscaling import InstanceRefreshSensor
from bp_aws.sensors.ssm_parameters import SsmParameterSensor
from bp_tasks import fleet_lock, params, rollout_undo, rollout_verdict
from bp_tasks import gpu_bundle_rollout as tasks
from bp_tasks.approvals import ApprovalGate
from bp_tasks.params import PLATFORM_START, SAFE_TO_RETRY
from include.naming.platform import AMI_BUILD_DAG
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
    approve = tasks.rollout_approval(request, checked)
    approved = ApprovalGate(approve.task_id)  # every task that changes a production fleet or node
    lock = tasks.acquire_lock()
    current = tasks.read_pointer(request, checked)
    move = PutSsmParameterOperator(
        task_id="move_pointer",
        aws_conn_id=AWS,
        name=checked["pointer"],
        value=request["pointer_value"],
        expected_version=current["version"],
        description="Active bundle (gpu_bundle_rollout)",
        pre_execute=approved,
    )
    confirm = SsmParameterSensor(
        task_id="confirm_pointer",
        aws_conn_id=AWS,
        name=checked["pointer"],
        equals=request["pointer_value"],
        deferrable=True,
        poke_interval=5,
        timeout=300,
        **SAFE_TO_RETRY,
    )
    path = tasks.strategy_path(request)

    apply_on_dev_node = RunCommandOperator(
        task_id="apply_on_dev_node",
        aws_conn_id=AWS,
        document_name=request["apply_document"],
        run_command_kwargs=checked["dev_node_command"],
        deferrable=True,
        waiter_delay=5,
        waiter_max_attempts=720,
        pre_execute=approved,
        **SAFE_TO_RETRY,
    )
    dev_node_checked = tasks.check_dev_node(request, apply_on_dev_node.output)
    bake = TriggerDagRunOperator(  # bake_and_refresh
        task_id="bake_ami",
        trigger_dag_id=AMI_BUILD_DAG,
        trigger_run_id=bake_run_id("{{ run_id }}"),  # the fleet lock lets this run act under ours
        reset_dag_run=True,  # a cleared bake_ami runs that bake again
        conf={"fleet_stage": request["fleet_stage"], "fleet_slug": request["fleet_slug"], "mode": "bake"}
        | {"aws_conn_id": AWS},
        wait_for_completion=True,
        deferrable=True,
        poke_interval=10,
        failed_states=["failed"],
    )

    has_instances = tasks.fleet_has_instances()  # refresh
    start = StartInstanceRefreshOperator(
        task_id="start_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name=request["auto_scaling_group"],
        preferences=tasks.refresh_preferences_of(request, current),
        wait_for_completion=False,
        pre_execute=approved,
    )
    judged, judged_again, verdict = rollout_verdict.judged_refresh(request, current, start.output, AWS)
    fleet_verified = tasks.verify_fleet_bundle()

    undo = rollout_undo.roll_back(request, checked, current)
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
    released = fleet_lock.release_lock(request).as_teardown(setups=lock)
    audit = tasks.record_audit(request, current)

    request >> checked >> tasks.approval_path(request) >> [approve, lock]
    approve >> lock >> current >> move >> confirm >> path
    path >> [apply_on_dev_node, bake, has_instances]
    apply_on_dev_node >> dev_node_checked
    bake >> has_instances >> start >> judged
    [judged, judged_again] >> fleet_verified
    # every task after which the fleet may have changed: roll_back watches them all
    [move, confirm, apply_on_dev_node, dev_node_checked, bake, has_instances, start, *verdict, fleet_verified] >> undo
    undo >> rollout_undo.refreshing_back(undo) >> wait_back
    [undo, wait_back, checked, lock] >> released >> audit >> tasks.rollout_outcome(request)


gpu_bundle_rollout()
