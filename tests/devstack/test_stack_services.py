"""The local stack refuses to half-start: a server it needs that doesn't answer is one
line naming it and how to point at another, with a non-zero exit and nothing running."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

from devstack import services
from devstack.stack import REPO_ROOT, free_port


def _demo(tmp_path, **env):
    return subprocess.run(
        [sys.executable, "-m", "devstack", "demo", "--home", str(tmp_path / "demo")],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"BP_EXECUTOR": "celery", "BP_REDIS_URL": "redis://127.0.0.1:{port}/0"}, "point BP_REDIS_URL at another"),
        ({"BP_POSTGRES_URL": "postgresql://postgres@127.0.0.1:{port}/postgres"}, "point BP_POSTGRES_URL at another"),
        ({"BP_EXECUTOR": "kubernetes"}, "BP_EXECUTOR='kubernetes' is not one of local, celery"),
    ],
    ids=["redis", "postgres", "executor"],
)
def test_an_unreachable_server_is_one_line_and_a_non_zero_exit(tmp_path, env, says):
    closed = free_port()
    result = _demo(tmp_path, **{key: value.format(port=closed) for key, value in env.items()})

    assert result.returncode != 0
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ")
    assert says in line
    assert not (tmp_path / "demo" / "stack.json").exists()  # nothing was started


def test_each_stack_gets_a_database_of_its_own_and_drops_it(tmp_path):
    postgres = services.postgres(tmp_path, allow_embedded=False)
    name = services.database_name(tmp_path)
    assert name != services.database_name(tmp_path / "other")

    url = postgres.recreate(name)
    assert url.endswith(f"/{name}")
    postgres.drop_created()

    import sqlalchemy as sa

    with sa.create_engine(postgres.admin_url.set(drivername="postgresql+psycopg2")).connect() as connection:
        names = {row[0] for row in connection.exec_driver_sql("SELECT datname FROM pg_database")}
    assert name not in names


def test_without_a_machine_postgres_the_one_machine_stack_embeds_one(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "DEFAULT_POSTGRES", f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    monkeypatch.delenv("BP_POSTGRES_URL", raising=False)

    postgres = services.postgres(tmp_path, allow_embedded=True)
    try:
        assert postgres.embedded is not None
        url = postgres.recreate(services.database_name(tmp_path))
        with sa.create_engine(url).connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        postgres.drop_created()
    # the server went with the stack: nothing is left running after the demo or the tests
    server = postgres.url("postgres")  # its own database, which drop_created leaves
    with pytest.raises(sa.exc.OperationalError):
        sa.create_engine(server, connect_args={"connect_timeout": 3}).connect()


def test_the_users_passwords_are_written_for_their_owner_only(tmp_path, monkeypatch):
    """``.local/up.json`` holds every user's password: 0600 even over a file left 0644."""
    import stat

    from devstack import __main__ as devstack_main

    state = tmp_path / "up.json"
    state.write_text("{}")
    state.chmod(0o644)
    monkeypatch.setattr(devstack_main, "UP_STATE", state)

    devstack_main._write_state(status="ready", users={"admin": {"roles": ["Admin"], "password": "s3cret"}})

    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert devstack_main.read_up_state()["users"]["admin"]["password"] == "s3cret"


def test_the_stacks_users_are_one_per_role_with_two_approvers_and_a_service_user():
    from devstack.users import APPROVERS, SERVICE, USERS, new_accounts

    accounts = new_accounts()

    assert {name: a.roles for name, a in accounts.items()} == {name: roles for name, (roles, _) in USERS.items()}
    assert len({a.password for a in accounts.values()}) == len(accounts)  # each its own
    assert all("Approver" in accounts[name].roles for name in APPROVERS)
    assert accounts[SERVICE].roles == ("Service",)
    assert {role for a in accounts.values() for role in a.roles} == {
        "Admin",
        "Viewer",
        "Operator",
        "Approver",
        "CI",
        "Service",
    }
