"""The local stack's users: one per person of :mod:`include.access`, two approvers (a run
one of them triggers is approved by the other), and the service user of the
``airflow_api`` connection. Created with FAB's own user store in the stack's fresh
database, before the api-server starts, in one process (``airflow users create`` costs
3.5 s a user); passwords are generated here and arrive on stdin, never in argv.

``python -m devstack.users`` (in the stack's environment) reads ``{name: {"password",
"roles"}}`` on stdin and prints ``{name: id}``: the ids FAB gave, which ``[bp] approvers``
needs (Airflow matches an approval's assigned users by id).
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from include.access import PEOPLE, custom_roles_json

ADMIN = "admin"
APPROVERS = ("approver", "approver2")
CI = "ci"
#: the ``airflow_api`` connection's user (role Service)
SERVICE = "airflow-api"

#: user -> (roles, who they are, for the banner)
USERS: dict[str, tuple[tuple[str, ...], str]] = {
    ADMIN: (PEOPLE["admin"], "administers Airflow"),
    "finance": (PEOPLE["finance"], "reads runs, logs and the weekly pack"),
    "operator": (PEOPLE["operator"], "triggers runs, reads logs, clears tasks"),
    APPROVERS[0]: (PEOPLE["approver"], "operator who answers production approvals"),
    APPROVERS[1]: (PEOPLE["approver"], "the second approver"),
    CI: (PEOPLE["ci"], "triggers and reads through the REST API"),
    SERVICE: (PEOPLE["service"], "the airflow_api connection the tasks use"),
}


@dataclass(frozen=True)
class Account:
    name: str
    password: str
    roles: tuple[str, ...]
    id: str = ""


FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def auth_env(accounts: dict[str, Account], api_url: str) -> dict[str, str]:
    """What every component of the stack gets for its users: the FAB auth manager with the
    project's roles, the two approvers by the ids FAB gave them, and the ``airflow_api``
    connection as the least-privileged service user (the change tasks read their
    approvals through it; ``ai_economics_reprice`` starts its backfills)."""
    service = accounts[SERVICE]
    connection = {"conn_type": "http", "host": api_url, "login": service.name, "password": service.password}
    return {
        "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
        "AIRFLOW__FAB__CUSTOM_ROLES": custom_roles_json(),
        "AIRFLOW__BP__APPROVERS": json.dumps(
            {"production": [{"id": accounts[name].id, "name": name} for name in APPROVERS]}
        ),
        "AIRFLOW_CONN_AIRFLOW_API": json.dumps(connection),
    }


def new_accounts() -> dict[str, Account]:
    return {name: Account(name, secrets.token_urlsafe(16), roles) for name, (roles, _) in USERS.items()}


def create(accounts: dict[str, Account], env: dict[str, str], cwd: Path) -> dict[str, Account]:
    """Create ``accounts`` in the database ``env`` points at; return them with their ids."""
    wanted = {a.name: {"password": a.password, "roles": list(a.roles)} for a in accounts.values()}
    done = subprocess.run(
        [sys.executable, "-m", "devstack.users"],
        input=json.dumps(wanted),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"creating the stack's users failed:\n{(done.stdout + done.stderr)[-3000:]}")
    ids = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: Account(a.name, a.password, a.roles, str(ids[name])) for name, a in accounts.items()}


def _create_in_fab(wanted: dict[str, dict]) -> dict[str, int]:
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:  # creates [fab] custom_roles on its way
        security = appbuilder.sm
        ids = {}
        for name, spec in wanted.items():
            roles = [security.find_role(role) for role in spec["roles"]]
            missing = [role for role, found in zip(spec["roles"], roles, strict=True) if found is None]
            if missing:
                raise SystemExit(f"unknown role(s) {missing} for {name}")
            user = security.find_user(name) or security.add_user(
                name, name, "(local stack)", f"{name}@localhost", roles, spec["password"]
            )
            if not user:
                raise SystemExit(f"FAB did not create user {name} (its log says why)")
            ids[name] = user.id
    return ids


if __name__ == "__main__":
    print(json.dumps(_create_in_fab(json.load(sys.stdin))))
