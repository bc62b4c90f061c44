"""
### GPU fleet provisioning: the fleet's desired_config becomes CloudFormation stacks

Replaces `provision-gpu-fleet.yml` and `apply-gpu-fleet-config.yml` (seed 004): the admin UI's
`/bp/fleets/<stage>/<slug>/desired_config` becomes `bp-gpu-shared-<stage>` (scale-to-zero topic and
function) and `bp-gpu-fleet-<stage>-<slug>` (launch template, Spot ASG, scaling, alarms).

**apply** (create, or update an existing fleet):

1. **validate_request** (no AWS call) → **wait_for_desired_config** (up to `config_wait_minutes`,
   in the triggerer) → **read_desired_config**: checked against the templates catalogue;
2. **check_ami_pointer**: launches resolve `/bp/ami/fleets/<stage>/<slug>`, so it must exist;
3. **approve_apply** (production only: a second person's Approve in the Airflow UI) →
   **acquire_lock** (the fleet's change lock: no rollout or AMI promotion meanwhile);
4. **package_function** → **deploy_shared_stack** → **deploy_fleet_stack** (each refuses
   without a valid approval): change sets logged as tables; unchanged is a no-op;
5. **verify_fleet**: the ASG, its policies and alarms match the config.

**destroy**: **check_fleet_idle** (the ASG must be at 0 instances) → **approve_destroy** (always)
→ **lock_for_destroy** → **delete_fleet_stack** (the shared stack stays). **release_lock** ends both.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from bp_aws.operators.cloudformation import CloudFormationDeleteStackOperator, CloudFormationDeployOperator
from bp_aws.sensors.ssm_parameters import SsmParameterSensor
from bp_tasks import fleet_lock
from bp_tasks import gpu_fleet_provision as tasks
from bp_tasks.approvals import ApprovalGate, FleetChangeApproval, every_stage
from bp_tasks.params import PLATFORM_START, SAFE_TO_RETRY, aws_conn_id_param, fleet_slug_param, fleet_stage_param
from include.fleets import provision

AWS = "{{ params.aws_conn_id }}"


@dag(
    schedule=None,
    start_date=PLATFORM_START,
    catchup=False,
    max_active_runs=1,  # one run at a time: a fleet's stacks are never changed by two runs
    doc_md=__doc__,
    tags=["platform", "fleet", "cloudformation"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "fleet_stage": fleet_stage_param("production applies and every destroy wait for an approval in the UI."),
        "fleet_slug": fleet_slug_param("The fleet, as created in the admin UI, e.g. `gpu-default`."),
        "action": Param(
            "apply",
            type="string",
            enum=list(provision.ACTIONS),
            title="Action",
            description="apply: create or update the fleet from its desired_config; destroy: delete the fleet stack.",
        ),
        "config_wait_minutes": Param(
            0,
            type="integer",
            minimum=provision.CONFIG_WAIT_MINUTES_BOUNDS[0],
            maximum=provision.CONFIG_WAIT_MINUTES_BOUNDS[1],
            title="Wait for desired_config (minutes)",
            description="When the fleet was just created in the admin UI: how long to wait for its desired_config.",
        ),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def gpu_fleet_provision():
    request = tasks.validate_request()
    path = tasks.action_path(request)
    tags = tasks.stack_tags(request)

    # --- apply ---------------------------------------------------------------------
    wait_for_config = SsmParameterSensor(
        task_id="wait_for_desired_config",
        aws_conn_id=AWS,
        name=request["desired_config"],
        max_wait_seconds=request["config_wait_seconds"],
        on_timeout="Nothing was deployed. Create the fleet in the admin UI (it writes desired_config), then run "
        "again; if it is being created, give config_wait_minutes more time.",
        poke_interval=15,
        deferrable=True,
        **SAFE_TO_RETRY,
    )
    config = tasks.read_desired_config(request)
    approve_apply = FleetChangeApproval(
        task_id="approve_apply",
        stage=request["fleet_stage"],
        change="the fleet's stacks were not deployed",
        subject=(apply_question := tasks.apply_question(request, config))["subject"],
        body=apply_question["body"],
        response_timeout=timedelta(days=2),
    )
    shared_parameters = tasks.package_function(request)
    deploy_shared = CloudFormationDeployOperator(
        task_id="deploy_shared_stack",
        aws_conn_id=AWS,
        stack_name=request["shared_stack"],
        template_file=str(provision.SHARED_TEMPLATE),
        parameters=shared_parameters,
        tags=tags["shared"],
        deferrable=True,
        waiter_delay=10,
        pre_execute=(approved := ApprovalGate(approve_apply.task_id)),  # production: a second person's Approve
        **SAFE_TO_RETRY,
    )
    deploy_fleet = CloudFormationDeployOperator(
        task_id="deploy_fleet_stack",
        aws_conn_id=AWS,
        stack_name=request["fleet_stack"],
        template_file=str(provision.FLEET_TEMPLATE),
        parameters=tasks.fleet_stack_parameters(request, config, deploy_shared.output),
        tags=tags["fleet"],
        deferrable=True,
        waiter_delay=10,
        pre_execute=approved,
        **SAFE_TO_RETRY,
    )
    path >> wait_for_config >> config >> tasks.check_ami_pointer(request) >> (approval := tasks.approval_path(request))
    lock_apply = fleet_lock.acquire_lock(purpose="fleet apply")
    approval >> [approve_apply, lock_apply]
    approve_apply >> lock_apply >> shared_parameters
    verified = tasks.verify_fleet(request, config, deploy_shared.output, deploy_fleet.output)

    # --- destroy -------------------------------------------------------------------
    approve_destroy = FleetChangeApproval(
        task_id="approve_destroy",
        stage=request["fleet_stage"],
        change="the fleet stack was not deleted",
        subject=(destroy_question := tasks.destroy_question(request))["subject"],
        body=destroy_question["body"],
        response_timeout=timedelta(days=2),
    )
    delete_fleet = CloudFormationDeleteStackOperator(
        task_id="delete_fleet_stack",
        aws_conn_id=AWS,
        stack_name=request["fleet_stack"],
        deferrable=True,
        waiter_delay=10,
        pre_execute=ApprovalGate(approve_destroy.task_id, stage_of=every_stage),
        **SAFE_TO_RETRY,
    )
    lock_destroy = fleet_lock.acquire_lock.override(task_id="lock_for_destroy")(purpose="fleet destroy")
    path >> tasks.check_fleet_idle(request) >> approve_destroy >> lock_destroy >> delete_fleet
    # a teardown: runs once either lock was taken; the run's state stays the work's
    [verified, delete_fleet] >> fleet_lock.release_lock(request).as_teardown(setups=[lock_apply, lock_destroy])


gpu_fleet_provision()
