"""``python -m devstack demo|up|down``: what ``make demo``, ``make up`` and ``make down``
run. ``BP_EXECUTOR=celery`` runs either on the CeleryExecutor with two workers.
``python -m devstack env <user>`` prints the shell line that points the CI client at the
stack ``make up`` started, as that user (``eval "$(...)"`` runs it).

``up`` starts ``python -m devstack serve`` in a session of its own: it starts the stack,
keeps it supervised (a component that dies is restarted) until ``make down`` asks it to
stop, and reports its state in ``.local/up.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack import baseline, demo
from devstack.processes import alive, stop_process_groups, write_private
from devstack.scenarios import prepare_stack
from devstack.services import ServiceUnavailable
from devstack.stack import REPO_ROOT, LocalStack, StackError, executor_from_environment
from devstack.users import USERS
from include.cli.airflow_client import AirflowApiError

UP_HOME = REPO_ROOT / ".local" / "up"
UP_STATE = REPO_ROOT / ".local" / "up.json"
UP_LOG = REPO_ROOT / ".local" / "up.log"
#: The stack starts in about a minute; seeding and migrating take the rest.
UP_TIMEOUT = 600


def read_up_state() -> dict[str, Any] | None:
    """What ``make up`` reported in ``.local/up.json`` (None when it never ran)."""
    try:
        return json.loads(UP_STATE.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_state(**state: Any) -> None:
    """``.local/up.json``: it holds the users' passwords, so only its owner may read it."""
    write_private(UP_STATE, json.dumps(state, indent=2))


def _banner(state: dict[str, Any]) -> str:
    url, accounts = state["api_url"], state["users"]
    rows = "\n".join(
        f"  {name:<12} {', '.join(account['roles']):<28} {account['password']}  {USERS[name][1]}"
        for name, account in accounts.items()
    )
    return f"""
The local stack is up: {state["engine"]} (baseline seeded in account {state["account"]}).

  Airflow UI   {url}  (sign in as any of these users)
  AWS emulator {state["moto_url"]}  (connection aws_default points at it)
  logs         {state["logs"]} (task logs: {state["task_logs"]} in the emulator)

  USER         ROLES                        PASSWORD
{rows}

Production approvals are answered by approver or approver2, never by the one who triggered
the run. Trigger from the UI, or from a shell as CI does (README: "First ten minutes"):
  eval "$(.venv/bin/python -m devstack env ci)"     # or env approver, env approver2, ...
  .venv/bin/python -m include.cli.trigger platform_preflight --conf '{{"fleet_stage": "staging"}}' --wait
  (every DAG is unpaused; fleets gpu-default in staging and production are seeded;
  ai_economics_daily has a month of synthetic ledger up to yesterday)

Stop everything with: make down"""


def up() -> int:
    state = read_up_state()
    if state and alive(state["serve_pid"]):
        if state["status"] == "ready":
            print(f"The stack is already up; 'make down' stops it.{_banner(state)}")
            return 0
        print(f"The stack is still starting (pid {state['serve_pid']}); its log: {UP_LOG}")
        return 1
    UP_LOG.parent.mkdir(parents=True, exist_ok=True)
    UP_STATE.unlink(missing_ok=True)
    with open(UP_LOG, "wb") as log:
        serve = subprocess.Popen(
            [sys.executable, "-m", "devstack", "serve"],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    print(f"Starting the local stack (log: {UP_LOG}) ...", flush=True)
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        state = read_up_state()
        if state and state["status"] == "ready":
            print(_banner(state))
            return 0
        if state and state["status"] == "failed":
            print(f"error: the local stack did not start: {state['error']}", file=sys.stderr)
            return 1
        if serve.poll() is not None:
            print(f"error: the local stack exited with code {serve.returncode}; see {UP_LOG}", file=sys.stderr)
            return 1
        time.sleep(1)
    print(f"error: the local stack was not up within {UP_TIMEOUT}s; see {UP_LOG}", file=sys.stderr)
    return 1


def serve() -> int:
    """Start the stack, keep it supervised, stop it on SIGTERM (``make down``)."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    _write_state(serve_pid=os.getpid(), status="starting")
    try:
        stack = LocalStack(UP_HOME, executor=executor_from_environment(), restart=True, on_event=print)
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        seeded, _ = stack.start(seed=prepare_stack(stack, yesterday, baseline.LOCAL_STACK_FLEETS))
        demo.unpause_every_dag(stack.client())
    except (StackError, ServiceUnavailable, AirflowApiError) as error:
        _write_state(serve_pid=os.getpid(), status="failed", error=str(error))
        return 1
    _write_state(
        serve_pid=os.getpid(),
        status="ready",
        engine=stack.describe(),
        account=seeded.account_id,
        api_url=stack.api_url,
        users={a.name: {"roles": list(a.roles), "password": a.password} for a in stack.accounts.values()},
        moto_url=stack.moto_url,
        logs=str(stack.logs_dir),
        task_logs=stack.remote_log_folder,
        pids=[c.process.pid for c in stack.components.values() if c.process],
    )
    print(f"The stack is up: {stack.describe()}", flush=True)
    stopping.wait()
    stack.stop()
    UP_STATE.unlink(missing_ok=True)
    return 0


def down() -> int:
    state = read_up_state()
    if not state or not alive(state["serve_pid"]):
        print("No local stack is running.")
        UP_STATE.unlink(missing_ok=True)
        return 0
    os.kill(state["serve_pid"], signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and alive(state["serve_pid"]):
        time.sleep(0.5)
    stop_process_groups([state["serve_pid"], *state.get("pids", [])], grace=5)  # whatever is left
    UP_STATE.unlink(missing_ok=True)
    print("The local stack is stopped.")
    return 0


def env(user: str) -> int:
    """``export AIRFLOW_API_URL=... AIRFLOW_USERNAME=... AIRFLOW_PASSWORD=...`` for ``user``
    of the running stack: the README's shell examples then run as printed."""
    state = read_up_state()
    if not state or state.get("status") != "ready" or not alive(state["serve_pid"]):
        print("error: no local stack is up; start one with: make up", file=sys.stderr)
        return 1
    if user not in state["users"]:
        print(f"error: the local stack has no user {user!r}; it has {', '.join(state['users'])}", file=sys.stderr)
        return 2
    settings = {
        "AIRFLOW_API_URL": state["api_url"],
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": state["users"][user]["password"],
    }
    print("export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in settings.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("demo", "up", "down", "serve", "env"))
    parser.add_argument("user", nargs="?", default="ci", help="env: the user to act as (default ci)")
    parser.add_argument("--home", type=Path, help="the demo's folder (default .local/demo)")
    args = parser.parse_args(argv)
    try:
        if args.command == "env":
            return env(args.user)
        if args.command == "demo":
            return demo.main(args.home) if args.home else demo.main()
        return {"up": up, "down": down, "serve": serve}[args.command]()
    except (StackError, ServiceUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
