"""The README's trigger examples, extracted from the README itself (so they can't drift)
and run as written against the local stack `make up` starts, in the order a reader
meets them: each must exit 0."""

from __future__ import annotations

import itertools
import os
import re
import shlex
import subprocess
import sys

import pytest

from devstack.stack import REPO_ROOT

pytestmark = pytest.mark.e2e
CLIENT = ("python", "-m", "include.cli.trigger")


def readme_examples() -> list[list[str]]:
    """Every ``python -m include.cli.trigger ...`` command of the README's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S):
        text = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith(("export ", "#")))
        tokens = shlex.split(text.replace("\\\n", " "), comments=True)
        starts = [i for i in range(len(tokens)) if tuple(tokens[i : i + 3]) == CLIENT]
        commands += [tokens[start:end] for start, end in itertools.pairwise([*starts, len(tokens)])]
    return commands


def test_the_readme_shows_the_examples_a_user_needs():
    dags = {command[3] for command in readme_examples()}
    assert {"platform_preflight", "weekly_review_pack", "gpu_bundle_rollout", "gpu_fleet_provision"} <= dags


def test_every_readme_example_runs_as_written(stack, client):
    env = {
        **os.environ,
        "AIRFLOW_API_URL": stack.api_url,
        "AIRFLOW_USERNAME": "ci",
        "AIRFLOW_PASSWORD": stack.password("ci"),
    }
    ran = set()
    for command in readme_examples():
        what, dag_id = command[3], command[4] if len(command) > 4 else None
        if what in ("approve", "reject"):
            # they need a run paused on a person: test_fleet_provision_dag answers one with this command
            continue
        # a reader fills <run_id> from the `runs` example just above it: the newest run;
        # <rollout_run_id> (inside a conf) is the newest gpu_bundle_rollout run
        newest = client.list_runs(dag_id, limit=1)[0].run_id if "<run_id>" in command else None
        command = [newest if token == "<run_id>" else token for token in command]
        if any("<rollout_run_id>" in token for token in command):
            rollout = client.list_runs("gpu_bundle_rollout", limit=1)[0].run_id
            command = [token.replace("<rollout_run_id>", rollout) for token in command]
        result = subprocess.run(
            [sys.executable, *command[1:]], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
        expected = {"runs": "RUN ID ", "logs": "----- log of "}.get(what, "the run: http://127.0.0.1:")
        assert expected in result.stdout, f"{shlex.join(command)}\n{result.stdout}"
        ran.add(what)
    assert {"runs", "logs", "gpu_bundle_rollout", "gpu_bundle_rollback", "weekly_review_pack"} <= ran
