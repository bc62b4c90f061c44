"""Every DAG file imports cleanly and follows the project's operating policy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p.name for p in (REPO_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))

#: Each DAG's overlap policy, decided on purpose: 1 where runs must not overlap.
EXPECTED_MAX_ACTIVE_RUNS = {
    "platform_preflight": 4,  # read-only: concurrent checks are harmless
    "ai_economics_daily": 1,  # days replace warehouse rows and build on earlier days
    "ai_price_catalogue": 1,  # one check at a time: two would accept, and announce, the same change
    "ai_economics_reprice": 1,  # one backfill of the economics at a time (Airflow allows no second)
    "ai_billing_import": 1,  # a day's bills and reconciliation are replaced by one run at a time
    "aws_spend_daily": 1,  # a day's spend rows are replaced, and its alerts sent, by one run at a time
    "gpu_ami_build_and_bake": 1,  # one build at a time: the AMI pointer is never raced
    "gpu_ami_revoke": 1,  # one revocation at a time: two would plan from the same pointer histories
    "gpu_fleet_provision": 1,  # a fleet's stacks are never changed by two runs at once
    "gpu_fleet_guardrails": 1,  # one inspection at a time: a staging fix is never applied twice at once
    "gpu_fleet_remediation": 16,  # one per production fleet: the guardrails never start a second for a fleet
    "gpu_bundle_rollout": 4,  # fleets in parallel; a per-fleet lock refuses a second rollout of one fleet
    "gpu_bundle_rollback": 4,  # fleets in parallel; the rollout it triggers takes the fleet lock
    "weekly_review_pack": 2,  # different weeks in parallel; a week rebuilds the same files
    "gpu_dev_node": 8,  # nodes in parallel; a per-node lock refuses a second action on one node
    "gpu_dev_node_idle_stop": 1,  # one sweep at a time: a node is never stopped twice at once
}


def _dags(dag_bag):
    return sorted(dag_bag.dags.values(), key=lambda dag: dag.dag_id)


def test_there_are_dag_files_and_each_defines_a_dag(dag_bag):
    assert DAG_FILES, "no DAG file found"
    files_with_dags = {Path(dag.fileloc).name for dag in dag_bag.dags.values()}
    assert files_with_dags == set(DAG_FILES)


def test_no_import_errors(dag_bag):
    assert dag_bag.import_errors == {}


def test_every_dag_is_documented_owned_tagged_and_retried(dag_bag):
    problems = []
    for dag in _dags(dag_bag):
        if not (dag.doc_md or "").strip():
            problems.append(f"{dag.dag_id}: no doc_md")
        if not dag.tags:
            problems.append(f"{dag.dag_id}: no tags")
        if "retries" not in dag.default_args:
            problems.append(f"{dag.dag_id}: default_args has no retries")
        for task in dag.tasks:
            if task.owner in ("", "airflow"):
                problems.append(f"{dag.dag_id}.{task.task_id}: owner is {task.owner!r}")
    assert problems == []


def test_every_dag_has_a_decided_overlap_policy(dag_bag):
    actual = {dag.dag_id: dag.max_active_runs for dag in _dags(dag_bag)}
    assert actual == EXPECTED_MAX_ACTIVE_RUNS


#: trigger rules under which one successful upstream is enough to start a task
JOIN_RULES = {"none_failed_min_one_success", "one_success"}


def _chooses_a_path(task) -> bool:
    """A branch or short-circuit: it skips the tasks of the path it doesn't take."""
    return any(name in cls.__name__ for cls in type(task).__mro__ for name in ("Branch", "ShortCircuit"))


def test_a_join_starts_only_when_one_of_its_paths_ran(dag_bag):
    # A join (the lock after an optional approval) with an upstream that succeeds whatever
    # path was taken - the request task, through an XComArg - would run when its whole
    # branch was skipped: a fleet apply once took the destroy lock and deleted its stack.
    problems = []
    for dag in _dags(dag_bag):
        for task in dag.tasks:
            if getattr(task.trigger_rule, "value", task.trigger_rule) not in JOIN_RULES:
                continue
            for upstream in task.upstream_list:
                ancestors = [upstream, *dag.get_task(upstream.task_id).get_flat_relatives(upstream=True)]
                if not any(_chooses_a_path(a) for a in ancestors):
                    problems.append(f"{dag.dag_id}.{task.task_id} starts on {upstream.task_id} alone")
    assert problems == []


def test_params_are_typed_and_constrained_so_the_trigger_form_validates_them(dag_bag):
    problems = []
    for dag in _dags(dag_bag):
        for name in dag.params:
            param = dag.params.get_param(name)
            schema = param.schema
            if "type" not in schema:
                problems.append(f"{dag.dag_id}.{name}: no type")
            if not (schema.get("title") and (param.description or schema.get("description_md"))):
                problems.append(f"{dag.dag_id}.{name}: needs a title and a description")
            types = schema.get("type")
            types = types if isinstance(types, list) else [types]
            if "string" in types and not ({"enum", "pattern", "format"} & schema.keys()):
                problems.append(f"{dag.dag_id}.{name}: a free string; give it an enum, a pattern or a format")
            # the UI's form counts an empty string as missing: Trigger stays greyed out and
            # says nothing. An optional text is nullable with no default; a required one
            # says so (minLength 1: "This field is required")
            if param.value == "" and "null" not in types and not schema.get("minLength"):
                problems.append(f"{dag.dag_id}.{name}: default '' makes the trigger form unsubmittable, silently")
    assert problems == []


_PARSE_WITHOUT_NETWORK = """
import json, socket, sys
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[1:] if args and isinstance(args[0], socket.socket) else args)[:200])
    raise OSError("network access is not allowed while parsing DAGs")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"attempts": attempts, "errors": bag.import_errors, "dags": sorted(bag.dag_ids)}))
"""


def test_parsing_the_dags_opens_no_network_connection():
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_WITHOUT_NETWORK, str(REPO_ROOT / "dags")],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["attempts"] == []
    assert report["errors"] == {}
    assert set(report["dags"]) == set(EXPECTED_MAX_ACTIVE_RUNS)


#: The tasks that change what a stage runs, by DAG: each must read its approval itself
#: (``ApprovalGate``), since an approval task's state can be set by hand.
GATED_CHANGES = {
    "gpu_fleet_provision": {"deploy_shared_stack": "approve_apply", "deploy_fleet_stack": "approve_apply",
                            "delete_fleet_stack": "approve_destroy"},
    "gpu_ami_build_and_bake": {"promote_ami": "approve_promotion", "start_instance_refresh": "approve_promotion"},
    "gpu_ami_revoke": {"revoke": "approve_revocation"},
    "gpu_bundle_rollout": {"move_pointer": "approve_rollout", "apply_on_dev_node": "approve_rollout",
                           "start_refresh": "approve_rollout", "continue_refresh": "approve_going_on"},
    "gpu_dev_node": {"act": "approve_terminate"},
    "gpu_fleet_remediation": {"remediate": "approve_remediation"},
}  # fmt: skip


def test_every_production_change_reads_its_approval_and_every_approval_is_read(dag_bag):
    from bp_tasks.approvals import ApprovalGate, FleetChangeApproval

    gates, approvals = {}, {}
    for dag in _dags(dag_bag):
        for task in dag.tasks:
            gate = getattr(task, "_pre_execute_hook", None)
            if isinstance(gate, ApprovalGate):
                gates.setdefault(dag.dag_id, {})[task.task_id] = gate.approval
            if isinstance(task, FleetChangeApproval) and task.second_to is None:
                approvals.setdefault(dag.dag_id, set()).add(task.task_id)

    assert gates == GATED_CHANGES
    assert approvals == {dag_id: set(changes.values()) for dag_id, changes in GATED_CHANGES.items()}


def test_a_lock_is_the_setup_of_its_release_so_clearing_a_change_takes_it_again(dag_bag):
    releases = {}
    for dag in _dags(dag_bag):
        for task in dag.tasks:
            if task.task_id.startswith("release_lock"):
                setups = sorted(t.task_id for t in task.upstream_list if t.is_setup)
                releases[dag.dag_id] = (task.is_teardown, setups)
    assert releases == {
        "gpu_ami_build_and_bake": (True, ["acquire_lock"]),
        "gpu_ami_revoke": (True, ["acquire_locks"]),
        "gpu_bundle_rollout": (True, ["acquire_lock"]),
        "gpu_dev_node": (True, ["acquire_lock"]),
        "gpu_fleet_provision": (True, ["acquire_lock", "lock_for_destroy"]),
    }
    rollout = dag_bag.dags["gpu_bundle_rollout"]
    cleared = rollout.partial_subset(task_ids=["start_refresh"], include_downstream=False, include_upstream=False)
    assert {"acquire_lock", "release_lock"} <= set(cleared.task_dict)


def test_a_task_pushes_the_keys_of_its_dict_apart_only_when_a_task_reads_one(dag_bag):
    """A dict returned with ``multiple_outputs`` (Airflow infers it from ``-> dict``) is
    pushed once whole and once per key: one api-server request and one database row each.
    Only a task whose keys the DAG takes as ``output["key"]`` may pay for that."""
    from bp_tasks.common import keys_read

    unread = [
        f"{dag.dag_id}.{task.task_id}"
        for dag in _dags(dag_bag)
        for task in dag.tasks
        if getattr(task, "multiple_outputs", False) and not keys_read(dag, task.task_id)
    ]
    assert unread == []
