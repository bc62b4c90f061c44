"""Who may do what in Airflow: the roles of the FAB auth manager, cut to the people who
use the pipeline, and given to Airflow as ``[fab] custom_roles``.

FAB's built-in ``Viewer`` (read everything, logs included) and ``Admin`` are used as they
are; the roles below add only what their people need on top of ``Viewer`` (a user holds
several roles). One rule of FAB's shapes them: any change below a DAG (a run, a task
instance, an answer to an approval) also needs ``can_edit`` on ``DAGs``, so every role
that changes anything may also pause a DAG.

| person | roles | may | may not |
|---|---|---|---|
| finance, product | Viewer | read DAGs, runs, logs, the Required Actions | trigger, answer |
| platform engineer | Viewer, Operator | trigger, clear and mark tasks | answer an approval |
| approver | Viewer, Operator, Approver | the above, and answer Required Actions | approve a run they triggered |
| CI | Viewer, CI | trigger and read through the REST API | edit a task instance (HTTP 403) |
| ``airflow_api`` connection | Service | read runs, tasks and approvals; start backfills | anything else |
| admin | Admin | everything | |

An approval is answered only by the users in ``[bp] approvers`` (the Approver role lets
a user answer at all; the list says whose answer Airflow accepts on a given approval).
Marking an approval task success by hand (Operator, Admin) approves nothing: the change
task reads the answer itself (``bp_tasks.approvals.ApprovalGate``).
"""

from __future__ import annotations

import json

DAGS, RUNS, TASKS, APPROVALS, BACKFILLS = "DAGs", "DAG Runs", "Task Instances", "HITL Detail", "Backfills"
VIEWER, ADMIN = "Viewer", "Admin"

#: role -> (action, resource) pairs, beyond Viewer's for the roles people hold with it.
ROLES: dict[str, tuple[tuple[str, str], ...]] = {
    "Operator": (
        ("can_edit", DAGS),
        ("can_create", RUNS),
        ("can_edit", RUNS),
        ("can_create", TASKS),
        ("can_edit", TASKS),
    ),
    "Approver": (
        ("can_edit", DAGS),
        ("can_edit", APPROVALS),
        ("menu_access", APPROVALS),
    ),
    "CI": (
        ("can_edit", DAGS),
        ("can_create", RUNS),
    ),
    # alone, without Viewer: what the tasks read of Airflow, and the reprice's backfills
    "Service": (
        ("can_read", DAGS),
        ("can_edit", DAGS),
        ("can_read", RUNS),
        ("can_create", RUNS),
        ("can_read", TASKS),
        ("can_read", APPROVALS),
        ("can_read", BACKFILLS),
    ),
}

#: What each person of the table above holds.
PEOPLE: dict[str, tuple[str, ...]] = {
    "finance": (VIEWER,),
    "operator": (VIEWER, "Operator"),
    "approver": (VIEWER, "Operator", "Approver"),
    "ci": (VIEWER, "CI"),
    "service": ("Service",),
    "admin": (ADMIN,),
}


def custom_roles_json() -> str:
    """``[fab] custom_roles`` (``AIRFLOW__FAB__CUSTOM_ROLES``): created when Airflow's FAB
    app starts, if missing (an existing role keeps the permissions it has)."""
    roles = {role: [{"action": a, "resource": r} for a, r in perms] for role, perms in ROLES.items()}
    return json.dumps(roles, sort_keys=True)
