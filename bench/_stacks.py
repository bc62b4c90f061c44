"""The stack a bench measures on: the running ``make up`` stack when there is one
(``.local/up.json``), else one of its own under ``.local/<name>``, stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack.__main__ import read_up_state
from devstack.demo import unpause_every_dag
from devstack.processes import alive
from devstack.scenarios import prepare_stack
from devstack.stack import REPO_ROOT, LocalStack, emulator_client_factory
from include.cli.airflow_client import AirflowClient


@dataclass(frozen=True)
class BenchStack:
    #: the admin's client
    client: AirflowClient
    logs_dir: Path
    #: the stack this bench started (None on a ``make up`` stack, which is not ours to change)
    own: LocalStack | None
    #: a client of another of the stack's users (devstack.users)
    client_of: Callable[[str], AirflowClient]
    #: boto3 clients of the stack's emulator
    aws: Callable[[str], Any]


def on_a_stack(name: str, measure: Callable[[BenchStack], int]) -> int:
    """``measure`` on a stack with every DAG unpaused; its exit code."""
    up = read_up_state()
    if up and up["status"] == "ready" and alive(up["serve_pid"]):
        print(f"On the running `make up` stack ({up['engine']}, {up['api_url']})")

        def client_of(user: str) -> AirflowClient:
            return AirflowClient(up["api_url"], username=user, password=up["users"][user]["password"], timeout=90)

        client = client_of("admin")
        unpause_every_dag(client)
        aws = emulator_client_factory(up["moto_url"])
        return measure(BenchStack(client, Path(up["logs"]), None, client_of, aws))
    stack = LocalStack(REPO_ROOT / ".local" / name)
    try:
        stack.start(seed=prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
        print(f"On a stack of its own ({stack.describe()})")
        client = stack.client()
        unpause_every_dag(client)
        return measure(
            BenchStack(client, stack.logs_dir, stack, lambda user: stack.client(user=user), stack.aws_client())
        )
    finally:
        stack.stop()
