"""``make demo``: the whole pipeline on the local stack, driven through the REST API.

The runs of :mod:`devstack.scenarios` are triggered in order with realistic conf; the
demo waits for each (watching the stack's services while it waits), stops at the first
run that does not succeed - printing its summary and the failed tasks' logs, never a
traceback - and exits 0 only if every run succeeded. ``BP_EXECUTOR=celery`` runs it on
the CeleryExecutor with two workers.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devstack import baseline
from devstack.scenarios import Scenario, prepare_stack, scenarios
from devstack.services import ServiceUnavailable
from devstack.stack import REPO_ROOT, LocalStack, StackError, executor_from_environment
from include.cli.airflow_client import AirflowApiError, AirflowClient, DagRun
from include.cli.commands import print_failed_task_logs

#: The longest a demo run takes on a loaded 2-core machine is about a minute (the
#: refresh rollout); ten times that is a hang, not a slow run.
RUN_TIMEOUT = 600
#: The dag-processor parses every file in about 20 s on a loaded machine.
PARSE_TIMEOUT = 180


@dataclass
class Outcome:
    scenario: Scenario
    run: DagRun | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.run is not None and self.run.state == "success"


def wait_for_dag(client: AirflowClient, dag_id: str, timeout: float = PARSE_TIMEOUT) -> None:
    """Wait until the dag-processor has parsed ``dag_id``; fail fast on an import error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get_dag(dag_id)
            return
        except AirflowApiError as error:
            if error.status != 404:
                raise
        errors = client.import_errors()
        if errors:
            details = "; ".join(f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors)
            raise StackError(f"DAG files failed to import: {details}")
        if time.monotonic() > deadline:
            raise StackError(f"DAG {dag_id} was not parsed within {timeout:.0f}s")
        time.sleep(1)


def unpause_every_dag(client: AirflowClient) -> list[str]:
    """What ``make up`` does once the DAGs are parsed: every DAG of the project can run at
    once (the economics DAGs' history starts tomorrow locally, so nothing catches up)."""
    dag_ids = sorted(path.stem for path in (REPO_ROOT / "dags").glob("[!_]*.py"))
    for dag_id in dag_ids:
        wait_for_dag(client, dag_id)
        client.set_paused(dag_id, False)
    return dag_ids


def run_scenario(client: AirflowClient, scenario: Scenario, stack: LocalStack) -> Outcome:
    if scenario.before is not None:
        print(f"  {scenario.before(stack)}", flush=True)
    wait_for_dag(client, scenario.dag_id)
    client.set_paused(scenario.dag_id, False)
    conf = scenario.conf(stack) if callable(scenario.conf) else scenario.conf
    run = client.trigger(scenario.dag_id, conf)
    print(f"  triggered {scenario.dag_id} ({scenario.purpose}) as {run.run_id}", flush=True)
    run = client.wait_for_run(scenario.dag_id, run.run_id, timeout=RUN_TIMEOUT, poll=1.0, on_poll=stack.check)
    return Outcome(scenario, run)


def print_summary(stack: LocalStack, outcomes: list[Outcome], out=sys.stdout) -> None:
    out.write(f"\nDemo summary ({stack.describe()})\n")
    header = f"{'DAG':<28} {'STATE':<8} {'DURATION':>9}  OUTPUTS\n"
    out.write(header + "-" * (len(header) + 20) + "\n")
    for outcome in outcomes:
        run = outcome.run
        state = run.state if run else "error"
        duration = f"{run.duration_seconds:.1f}s" if run and run.duration_seconds is not None else "-"
        outputs = outcome.scenario.outputs(stack, run) if outcome.ok else []
        if run:
            outputs.insert(0, f"{stack.api_url}/dags/{run.dag_id}/runs/{run.run_id}")
        lines = outputs or [outcome.error or ""]
        out.write(f"{outcome.scenario.dag_id:<28} {state:<8} {duration:>9}  {lines[0]}\n")
        for line in lines[1:]:
            out.write(f"{'':<48}{line}\n")
    agents = stack.node_agents()
    if agents:
        out.write(
            f"\nNode agents: {agents['nodes']} emulated node(s) ran the real agent (gpu_worker.agent); "
            f"{agents['datums']} datapoints in {agents['metric_calls']} PutMetricData call(s), "
            f"{agents['protection_changes']} scale-in protection change(s), {agents['heartbeats']} heartbeat(s). "
            "The rollout verdicts above and the guardrails' silent-agent check read what they published.\n"
        )
        if agents.get("drains"):
            out.write(
                f"Draining: {agents['drains']} leaving node(s) finished their prompts before they went "
                f"(the longest waited {agents['drain_seconds_max']:.0f} s), "
                f"{agents['abandoned_jobs']} prompt(s) killed at a drain deadline, "
                f"{agents['spot_notices']} Spot notice(s).\n"
            )
    out.write(f"\nService logs: {stack.logs_dir}\n")


def main(home: Path = REPO_ROOT / ".local" / "demo") -> int:
    started = time.monotonic()
    stack = LocalStack(home, executor=executor_from_environment(), on_event=print)
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    print(f"Starting the local stack under {stack.home} (moto {stack.moto_url}, Airflow {stack.api_url})", flush=True)
    outcomes: list[Outcome] = []
    try:
        seeded, economics = stack.start(seed=prepare_stack(stack, last_day, baseline.LOCAL_STACK_FLEETS))
        print(f"  running on {stack.describe()}")
        print(f"  seeded the platform baseline in account {seeded.account_id} ({len(seeded.fleets)} fleet(s))")
        print(
            f"  seeded {economics.counts['ai_usage_logs']} AI requests over {economics.window.days} days "
            f"({economics.window.first_day} to {last_day}) and 28 days of warehouse history"
        )
        runs = scenarios(economics)
        print(
            f"  Airflow is healthy after {time.monotonic() - started:.0f}s; running {len(runs)} DAG run(s)", flush=True
        )
        client = stack.client()
        for scenario in runs:
            try:
                outcomes.append(run_scenario(client, scenario, stack))
            except (AirflowApiError, StackError, TimeoutError) as error:
                outcomes.append(Outcome(scenario, None, str(error)))
            if not outcomes[-1].ok:
                break
        print_summary(stack, outcomes)
        failed = next((o for o in outcomes if not o.ok), None)
        if failed is not None and failed.run is not None:
            print(f"\n{failed.scenario.dag_id} did not succeed; the log of each failed task:")
            print_failed_task_logs(client, failed.run, sys.stdout)
    except (StackError, ServiceUnavailable) as error:
        print(f"error: the local stack did not start: {error}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    failed_runs = [o for o in outcomes if not o.ok]
    skipped = len(runs) - len(outcomes) if outcomes else 0
    verdict = (
        "every run succeeded"
        if not failed_runs
        else f"{failed_runs[0].scenario.dag_id} did not succeed; {skipped} later run(s) not started"
    )
    print(f"Demo finished in {time.monotonic() - started:.0f}s on {stack.describe()}: {verdict}.")
    return 0 if outcomes and not failed_runs else 1
