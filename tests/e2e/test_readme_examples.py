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

from devstack.baseline import LOCAL_STACK_FLEETS, seed_baseline
from devstack.demo import unpause_every_dag
from devstack.stack import REPO_ROOT
from include.naming.fleet import Fleet

pytestmark = [pytest.mark.e2e, pytest.mark.services]
CLIENT = ("-m", "include.cli.trigger")
#: ``eval "$(.venv/bin/python -m devstack env <user>)"``: the shell acts as that user from then on
AS_USER = re.compile(r"^\$\((?:\.venv/bin/)?python -m devstack env (\w+)\)$")


#: What ``--wait`` prints of a successful run of these DAGs (their tasks' outcomes)
SAYS = {
    # the reason it skipped (on a fresh stack: the first version seen), or what changed
    "ai_price_catalogue": ("  Skipped: ", "  Price catalogue "),
    "weekly_review_pack": "action(s); the pack of ",  # the files written
    "gpu_fleet_guardrails": "  Guardrail findings:",
    "gpu_ami_build_and_bake": "  Decision: ",
    "gpu_bundle_rollout": " is live on staging/gpu-default",
    "gpu_dev_node": " of dev node staging/alice-sdxl: ",
}


def readme_examples() -> list[list[str]]:
    """Every ``python -m include.cli.trigger ...`` command of the README's bash blocks (or
    ``.venv/bin/python -m ...``), and each ``devstack env <user>`` line as ``["as", user]``."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S):
        text = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith(("export ", "#")))
        tokens = shlex.split(text.replace("\\\n", " "), comments=True)
        starts = [
            i
            for i, token in enumerate(tokens)
            if token == "eval" or (token in ("python", ".venv/bin/python") and tuple(tokens[i + 1 : i + 3]) == CLIENT)
        ]
        for start, end in itertools.pairwise([*starts, len(tokens)]):
            if tokens[start] != "eval":
                commands.append(["python", *tokens[start + 1 : end]])
            elif user := AS_USER.match(tokens[start + 1]):
                commands.append(["as", user.group(1)])
    return commands


def test_the_readme_shows_the_examples_a_user_needs():
    examples = readme_examples()
    dags = {command[3] for command in examples if command[0] == "python"}
    assert {"platform_preflight", "weekly_review_pack", "gpu_bundle_rollout", "gpu_fleet_provision"} <= dags
    # the first ten minutes: a production change asked by one user and approved by another
    assert ["as", "approver"] in examples
    assert any(command[3:5] == ["approve", "gpu_fleet_provision"] and "<run_id>" not in command for command in examples)


def test_every_readme_example_runs_as_written(stack, client):
    # what `make up` does beside the e2e baseline: the production fleet the first ten minutes
    # apply, and every DAG unpaused
    seed_baseline(stack.aws_client(), fleets=LOCAL_STACK_FLEETS)
    unpause_every_dag(client)
    user = "ci"
    ran = set()
    for command in readme_examples():
        if command[0] == "as":
            user = command[1]
            continue
        what, dag_id = command[3], command[4] if len(command) > 4 else None
        if what in ("approve", "reject") and "<run_id>" in command:
            # they need a run paused on a person: test_fleet_provision_dag answers one with this command
            continue
        # a reader fills <run_id> from the `runs` example just above it: the newest run;
        # <rollout_run_id> (inside a conf) is the newest gpu_bundle_rollout run
        newest = client.list_runs(dag_id, limit=1)[0].run_id if "<run_id>" in command else None
        command = [newest if token == "<run_id>" else token for token in command]
        if any("<rollout_run_id>" in token for token in command):
            rollout = client.list_runs("gpu_bundle_rollout", limit=1)[0].run_id
            command = [token.replace("<rollout_run_id>", rollout) for token in command]
        env = {
            **os.environ,
            "AIRFLOW_API_URL": stack.api_url,
            "AIRFLOW_USERNAME": user,
            "AIRFLOW_PASSWORD": stack.password(user),
        }
        result = subprocess.run(
            [sys.executable, *command[1:]], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{shlex.join(command)}\n{result.stdout}\n{result.stderr}"
        waited = "--wait" in command
        expected = {"runs": "RUN ID ", "logs": "----- log of ", "approve": "Approve sent for "}.get(
            what, "the run: http://127.0.0.1:" if waited else "triggered "
        )
        assert expected in result.stdout, f"{shlex.join(command)}\n{result.stdout}"
        if waited:
            assert "final state: success" in result.stdout, f"{shlex.join(command)}\n{result.stdout}"
        if what == "logs":  # Airflow's own deprecation noise is kept out of every task log
            assert "GitWildMatchPattern" not in result.stdout, result.stdout
        if waited and what in SAYS:  # what the run did, as the demo's summary says it
            said = SAYS[what] if isinstance(SAYS[what], tuple) else (SAYS[what],)
            assert any(line in result.stdout for line in said), f"{shlex.join(command)}\n{result.stdout}"
        ran.add(what)
    assert {"runs", "logs", "approve", "gpu_bundle_rollout", "gpu_bundle_rollback", "weekly_review_pack"} <= ran
    production = Fleet("production", "gpu-default")
    assert stack.aws_client()("cloudformation").describe_stacks(StackName=production.fleet_stack)["Stacks"]
