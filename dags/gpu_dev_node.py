"""
### GPU dev node: a developer's own GPU instance, from create to terminate

Replaces `create-dev-gpu-instance.yml` and `infrastructure/dev-gpu/launch.sh` (seed 000 §4,
Phase E). One run is one **action** on one node (`fleet_stage`/`name`):

1. **validate_request** (name, owner, action, instance type; before any AWS call) →
   **acquire_lock** (a setup): one action per node at a time (a second run is refused);
2. **inspect_node**: AWS and the registry `/bp/devnodes/<stage>/<name>/`; refused here, before
   any change: `start` on a terminated node, a fleet without an AMI pointer, an instance type
   its template doesn't allow, `stop` while a bundle apply runs on the node;
3. **act** (deferrable waits, in the triggerer): `create` (the fleet's AMI, a security group
   with **no inbound rule**, IMDSv2, encrypted root, the dev-node profile, tags `devnode`,
   `owner`, `stage`), `start`, `restart` → EC2 status checks → **ready** (ComfyUI answers on
   the node: `bp-devnode-health-<stage>`); `stop`; `terminate` (+ its security group), after
   **approve_terminate** (Approve in the UI) in production or for a node under an hour old
   (**go_ahead** joins both paths);
   `status`: **report_status**, the registry against AWS, drift named. **act** refuses a
   terminate that asked an approval unless Airflow recorded a valid Approve;
4. **record_lifecycle** (always): the registry takes AWS's state; one immutable event in
   `audit/devnodes/<stage>/<name>/<run_id>.jsonl` (who, what, from/to state, durations,
   result) - the source of the nodes' hours and cost in `ai_devnode_daily`;
5. **release_lock** (the teardown) → **outcome**: the run's verdict in one paragraph.

Open ComfyUI on a node through Session Manager (no port is open): see the README.
"""

from __future__ import annotations

from airflow.sdk import dag

from bp_aws.operators.dev_node import DevNodeActionOperator
from bp_tasks import fleet_lock
from bp_tasks import gpu_dev_node as tasks
from bp_tasks.approvals import ApprovalGate, FleetChangeApproval
from bp_tasks.params import PLATFORM_START, SAFE_TO_RETRY, dev_node_params


@dag(
    schedule=None,
    start_date=PLATFORM_START,
    catchup=False,
    max_active_runs=8,  # different nodes in parallel; the node's lock serializes one node
    doc_md=__doc__,
    tags=["platform", "dev-node"],
    default_args={"owner": "platform", "retries": 0},
    params=dev_node_params(),
)
def gpu_dev_node():
    request = tasks.validate_request()
    lock = tasks.acquire_lock(request)
    plan = tasks.inspect_node(request)
    path = tasks.action_path(request, plan)
    approve = FleetChangeApproval(
        task_id="approve_terminate",
        stage=request["fleet_stage"],
        subject=plan["approval_subject"],
        body=plan["approval_body"],
        change="the dev node was not terminated",
    )
    cleared = tasks.go_ahead()
    act = DevNodeActionOperator(
        task_id="act",
        aws_conn_id="{{ params.aws_conn_id }}",
        action=request["action"],
        plan=cleared,
        health_document=request["health_document"],
        deferrable=True,
        poll_interval=5,
        pre_execute=ApprovalGate(approve.task_id, stage_of=tasks.terminate_approval_stage),
        **SAFE_TO_RETRY,
    )
    status = tasks.report_status(request, plan)
    recorded = tasks.record_lifecycle(request)
    # the node's lock (DevNodeRequest.lock), a setup: clearing any task between takes it again
    released = fleet_lock.release_lock(request).as_teardown(setups=lock)

    request >> lock >> plan >> path >> [approve, cleared, status]
    approve >> cleared
    [plan, path, approve, cleared, act, status] >> recorded >> released >> tasks.outcome(request, recorded)


gpu_dev_node()
