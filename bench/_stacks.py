"""The stack a bench measures on: the running ``make up`` stack when there is one
(``.local/up.json``), else one of its own under ``.local/<name>``, stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devstack.__main__ import read_up_state
from devstack.demo import unpause_every_dag
from devstack.processes import alive
from devstack.scenarios import prepare_stack
from devstack.stack import REPO_ROOT, LocalStack
from include.cli.airflow_client import AirflowClient


@dataclass(frozen=True)
class BenchStack:
    client: AirflowClient
    logs_dir: Path
    #: the stack this bench started (None on a ``make up`` stack, which is not ours to change)
    own: LocalStack | None


def on_a_stack(name: str, measure: Callable[[BenchStack], int]) -> int:
    """``measure`` on a stack with every DAG unpaused; its exit code."""
    up = read_up_state()
    if up and up["status"] == "ready" and alive(up["serve_pid"]):
        print(f"On the running `make up` stack ({up['engine']}, {up['api_url']})")
        client = AirflowClient(up["api_url"], username="admin", password=up["password"])
        unpause_every_dag(client)
        return measure(BenchStack(client, Path(up["logs"]), None))
    stack = LocalStack(REPO_ROOT / ".local" / name)
    try:
        stack.start(seed=prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
        print(f"On a stack of its own ({stack.describe()})")
        client = stack.client()
        unpause_every_dag(client)
        return measure(BenchStack(client, stack.logs_dir, stack))
    finally:
        stack.stop()
