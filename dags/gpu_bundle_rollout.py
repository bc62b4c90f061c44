"""
### GPU bundle rollout: a model bundle reaches a fleet, verified, or is rolled back

Replaces seed 004's hand runbook (activate in the admin UI → bake → roll the ASG) and
`apply-comfyui-bundle.yml`:

1. **validate_request**: params checked (schema, then domain checks), before any AWS call;
2. **check_bundle**: the manifest passes the installer's own validator and every asset
   is in the models bucket at the manifest's size (HEAD), before anything moves;
3. **acquire_lock**: one rollout per fleet; a second one is refused and names the first;
4. **read_pointer** → **move_pointer** (optimistic: refused if the pointer changed since
   it was read) → **confirm_pointer** (the SSM sensor);
5. by **strategy**:
   * `pointer_only`: done; nodes pick the bundle up at their next boot;
   * `dev_node`: **apply_on_dev_node** runs the installer through Run Command (the
     document's parameters are SSM parameter names, checked by SSM, never shell text),
     **check_dev_node** keeps its output in `bp-logs-<account>/asset-sync/` and checks the
     node reports the new bundle;
   * `refresh`: with no instance in the ASG it stops (nodes that scale from zero boot
     with the new pointer); else **start_refresh** → **wait_for_refresh** (in the
     triggerer, progress logged) → **verify_fleet_bundle**: every InService node reports
     the new bundle;
   * `bake_and_refresh`: **bake_ami** runs `gpu_ami_build_and_bake` (bake mode) and
     waits for it, then the refresh;
6. **roll_back** (on any failure): the pointer restored (only over this run's own
   write), the refresh cancelled, the replaced nodes refreshed back onto the restored
   bundle (`auto_rollback`; **wait_for_roll_back** waits in the triggerer), a critical
   alert;
7. **release_lock**, **record_audit**: one immutable JSON-lines record per rollout in
   `bp-logs-<account>/audit/rollouts/`, also POSTed (signed) to the backend's ops
   endpoint when `[bp] asset_ops_api_url` is set;
8. **rollout_outcome**: the run's verdict, failed with the rollback paragraph when
   anything failed.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.providers.amazon.aws.operators.ssm import SsmRunCommandOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from bp_aws import rollout_tasks
from bp_aws.operators.autoscaling import StartInstanceRefreshOperator
from bp_aws.operators.ssm_parameters import PutSsmParameterOperator
from bp_aws.params import aws_conn_id_param, fleet_slug_param, fleet_stage_param
from bp_aws.sensors.autoscaling import InstanceRefreshSensor
from bp_aws.sensors.ssm_parameters import SsmParameterSensor
from include import bundle_rollout

log = logging.getLogger("bp.gpu_bundle_rollout")
AWS = "{{ params.aws_conn_id }}"
REQUEST = "ti.xcom_pull(task_ids='validate_request')"


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,  # different fleets roll out in parallel; acquire_lock serializes one fleet
    doc_md=__doc__,
    tags=["platform", "bundle", "rollout"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "fleet_stage": fleet_stage_param("The stage of the fleet the bundle goes to."),
        "fleet_slug": fleet_slug_param(),
        "bundle_id": Param(
            type="string",
            pattern=bundle_rollout.BUNDLE_ID_PATTERN,
            maxLength=128,
            title="Bundle id",
            description="The bundle to roll out: its manifest is `bundles/<bundle_id>/manifest.json`.",
        ),
        "strategy": Param(
            "refresh",
            type="string",
            enum=list(bundle_rollout.STRATEGIES),
            title="Strategy",
            description="pointer_only; dev_node (one running node, by Run Command); refresh (replace the fleet's "
            "nodes); bake_and_refresh (bake a new AMI first).",
        ),
        "instance_id": Param(
            None,
            type=["null", "string"],
            pattern=bundle_rollout.INSTANCE_ID_PATTERN,
            title="Instance id (dev_node only)",
            description="The running node to install the bundle on, e.g. `i-0123456789abcdef0`.",
        ),
        "min_healthy_percentage": Param(
            90,
            type="integer",
            minimum=0,
            maximum=100,
            title="Minimum healthy %",
            description="Share of the fleet that stays in service while the refresh replaces nodes.",
        ),
        "checkpoint_percentages": Param(
            [],
            type="array",
            items={"type": "integer", "minimum": 1, "maximum": 100},
            maxItems=10,
            title="Checkpoint percentages",
            description="e.g. [50, 100]: the refresh pauses one warmup at each.",
        ),
        "auto_rollback": Param(
            True, type="boolean", title="Roll back", description="On failure, refresh replaced nodes back."
        ),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def gpu_bundle_rollout():
    @task
    def validate_request(params: dict | None = None) -> dict:
        """Domain checks on the params, before any AWS call."""
        try:
            request = bundle_rollout.RolloutRequest.from_params(params)
        except bundle_rollout.InvalidRequest as error:
            raise AirflowFailException(f"Invalid request: {error}. Nothing was changed.") from error
        log.info("Rollout request: %s", request.as_dict())
        return request.as_dict()

    request = validate_request()
    checked = rollout_tasks.check_bundle(request)
    lock = rollout_tasks.acquire_lock(request)
    current = rollout_tasks.read_pointer(request)

    move = PutSsmParameterOperator(
        task_id="move_pointer",
        aws_conn_id=AWS,
        name="{{ " + REQUEST + "['pointer'] }}",
        value="{{ " + REQUEST + "['bundle_prefix'] }}",
        expected_version="{{ ti.xcom_pull(task_ids='read_pointer')['version'] }}",
        description="Active bundle of the fleet (gpu_bundle_rollout)",
    )
    confirm = SsmParameterSensor(
        task_id="confirm_pointer",
        aws_conn_id=AWS,
        name="{{ " + REQUEST + "['pointer'] }}",
        equals="{{ " + REQUEST + "['bundle_prefix'] }}",
        deferrable=True,
        poke_interval=5,
        timeout=300,
    )
    path = rollout_tasks.strategy_path(request)

    # dev_node
    apply_on_dev_node = SsmRunCommandOperator(
        task_id="apply_on_dev_node",
        aws_conn_id=AWS,
        document_name="{{ " + REQUEST + "['apply_document'] }}",
        run_command_kwargs={
            "InstanceIds": ["{{ params.instance_id }}"],
            "Parameters": {
                "bucketParameter": ["{{ " + REQUEST + "['models_bucket_parameter'] }}"],
                "prefixParameter": ["{{ " + REQUEST + "['pointer'] }}"],
            },
            "Comment": "gpu_bundle_rollout {{ run_id[:60] }}",
        },
        deferrable=True,
        waiter_delay=5,
        waiter_max_attempts=720,
    )
    dev_node_checked = rollout_tasks.check_dev_node(request, apply_on_dev_node.output)

    # bake_and_refresh
    bake = TriggerDagRunOperator(
        task_id="bake_ami",
        trigger_dag_id=bundle_rollout.AMI_DAG,
        conf={
            "fleet_stage": "{{ params.fleet_stage }}",
            "fleet_slug": "{{ params.fleet_slug }}",
            "mode": "bake",
            "aws_conn_id": "{{ params.aws_conn_id }}",
        },
        wait_for_completion=True,
        deferrable=True,
        poke_interval=10,
        failed_states=["failed"],
    )

    # refresh
    has_instances = rollout_tasks.fleet_has_instances(request)
    start = StartInstanceRefreshOperator(
        task_id="start_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name="{{ " + REQUEST + "['auto_scaling_group'] }}",
        preferences=rollout_tasks.refresh_preferences(request, current),
        wait_for_completion=False,
    )
    wait = InstanceRefreshSensor(
        task_id="wait_for_refresh",
        aws_conn_id=AWS,
        auto_scaling_group_name="{{ " + REQUEST + "['auto_scaling_group'] }}",
        instance_refresh_id=start.output,
        deferrable=True,
        poke_interval=5,
        timeout=6 * 3600,
    )
    fleet_verified = rollout_tasks.verify_fleet_bundle(request)

    undo = rollout_tasks.roll_back(request, current)
    wait_back = InstanceRefreshSensor(
        task_id="wait_for_roll_back",
        aws_conn_id=AWS,
        auto_scaling_group_name="{{ " + REQUEST + "['auto_scaling_group'] }}",
        instance_refresh_id="{{ ti.xcom_pull(task_ids='roll_back')['back_refresh_id'] }}",
        deferrable=True,
        poke_interval=5,
        timeout=6 * 3600,
    )
    released = rollout_tasks.release_lock(request)
    audit = rollout_tasks.record_audit(request, current)

    request >> checked >> lock >> current >> move >> confirm >> path
    path >> [apply_on_dev_node, bake, has_instances]
    apply_on_dev_node >> dev_node_checked
    bake >> has_instances >> start >> wait >> fleet_verified
    # every task after which the fleet may have changed: roll_back watches them all
    [move, confirm, apply_on_dev_node, dev_node_checked, bake, has_instances, start, wait, fleet_verified] >> undo
    undo >> rollout_tasks.refreshing_back(undo) >> wait_back
    [undo, wait_back, checked, lock] >> released >> audit >> rollout_tasks.rollout_outcome(request)


gpu_bundle_rollout()
