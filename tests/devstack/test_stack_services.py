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


def test_env_prints_the_line_that_points_the_client_at_the_stack_as_a_user(tmp_path, monkeypatch, capsys):
    """``eval "$(python -m devstack env approver2)"`` (the README's first ten minutes): the
    password is quoted for the shell, whatever it holds."""
    import os
    import shlex
    import subprocess

    from devstack import __main__ as devstack_main

    monkeypatch.setattr(devstack_main, "UP_STATE", tmp_path / "up.json")
    assert devstack_main.main(["env", "approver2"]) == 1  # nothing is up
    assert "no local stack is up; start one with: make up" in capsys.readouterr().err

    users = {"ci": {"roles": ["CI"], "password": "p'q r$x"}, "approver2": {"roles": ["Approver"], "password": "a2"}}
    devstack_main._write_state(serve_pid=os.getpgrp(), status="ready", api_url="http://127.0.0.1:8123", users=users)
    assert devstack_main.main(["env", "nobody"]) == 2
    assert "no user 'nobody'; it has ci, approver2" in capsys.readouterr().err

    assert devstack_main.main(["env"]) == 0
    line = capsys.readouterr().out
    shell = subprocess.run(
        ["/bin/bash", "-c", f'eval {shlex.quote(line)}; echo "$AIRFLOW_API_URL|$AIRFLOW_USERNAME|$AIRFLOW_PASSWORD"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.strip() == "http://127.0.0.1:8123|ci|p'q r$x"


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


def test_a_restarted_component_leaves_no_orphan_and_stop_ends_every_group_it_led(tmp_path):
    """`make up` restarts a worker killed with -9; what that worker had started (Celery's
    own child) must not run on beside the new one, nor survive `make down`."""
    import os
    import signal
    import sys
    import time

    from devstack.processes import Component, Supervisor, alive, stop_process_groups

    child = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    worker = Component("w1", [sys.executable, "-c", child], dict(os.environ), tmp_path, tmp_path / "w1.log")
    supervisor = Supervisor({"w1": worker}, restart=True)
    worker.start()
    try:
        for _ in range(2):  # killed twice, as in the issue
            leader = worker.process.pid
            time.sleep(1)  # its sleep child has started
            os.kill(leader, signal.SIGKILL)
            worker.process.wait()
            assert alive(leader)  # the orphaned child still runs in the dead leader's group
            supervisor.check()  # restarts it, ending the dead one's group first
            assert not alive(leader)
            assert worker.process.pid != leader
        assert len(worker.groups) == 3
    finally:
        stop_process_groups(worker.groups, grace=5)
    assert not any(alive(group) for group in worker.groups)
