"""CPU a DAG run costs the machine, with and without the project's Airflow local settings
(``plugins/airflow_local_settings.py``: one botocore data loader per process, the tasks' AWS
models parsed before the scheduler forks them), and as ``dag.test()`` in one process.

Each stack variant gets a stack of its own; "without" puts an empty
``airflow_local_settings`` ahead of ``plugins/`` on the stack's ``PYTHONPATH``. Every run is
triggered alone and waited for; its cost is the whole machine's busy CPU between the
trigger and the end (``/proc/stat``), so run it on a quiet machine. The first run of each
DAG warms the stack's processes and is left out. The ``dag.test()`` column runs the same
DAGs in one Python process with the "with" stack's settings (its moto server, connections
and Variables) and a SQLite metadata database of its own, as a test tier without a
scheduler would: does such a tier make a run cheaper?

    .venv/bin/python bench/task_cpu.py [--runs 6]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.demo import unpause_every_dag
from devstack.scenarios import prepare_stack
from devstack.stack import REPO_ROOT, LocalStack
from include.tables import format_table

#: (DAG, conf): a read-only two-task run, and a day of the economics (GX, pandas, SQL)
RUNS = (
    ("platform_preflight", {"fleet_stage": "staging"}),
    ("ai_economics_daily", None),
)


def busy_cpu_seconds() -> float:
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    user, nice, system, irq, softirq = (int(fields[i]) for i in (1, 2, 3, 6, 7))
    return (user + nice + system + irq + softirq) / 100


def median_cost(run_once: Callable[[], Any], runs: int) -> tuple[float, Any, float]:
    """``run_once`` ``runs + 1`` times (it returns the run, ended): the median busy CPU of
    the runs after the first, which warms the processes, the last run, and the runs'
    median wall time."""
    costs, walls = [], []
    for _ in range(runs + 1):
        started, before = time.monotonic(), busy_cpu_seconds()
        run = run_once()
        costs.append(busy_cpu_seconds() - before)
        walls.append(time.monotonic() - started)
        if run.state != "success":
            raise SystemExit(f"{run.dag_id} {run.run_id} ended {run.state}")
    return statistics.median(costs[1:]), run, statistics.median(walls[1:])


def in_one_process(dag_id: str, conf: dict, runs: int) -> float:
    """(In a child whose environment is a stack's, with a SQLite metadata database.) The
    median cost of a ``dag.test()`` run in this process."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow_local_settings import share_botocore_data_loader

    share_botocore_data_loader()  # as tests/conftest.py does for the tests' own process
    dag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py")).get_dag(dag_id)
    return median_cost(lambda: dag.test(run_conf=conf), runs)[0]


def measure_dag_test(stack: LocalStack, conf_of: dict[str, dict], runs: int) -> dict[str, float]:
    """The median ``dag.test()`` cost of each DAG of :data:`RUNS` (a child process each)."""
    home = Path(tempfile.mkdtemp(prefix="bench-dag-test-"))
    env = {
        **stack.env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    }
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    medians = {}
    for dag_id, _ in RUNS:
        child = subprocess.run(
            [sys.executable, __file__, "--in-one-process", dag_id, json.dumps(conf_of[dag_id]), str(runs)],
            env=env,
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        medians[dag_id] = json.loads(child.stdout.strip().splitlines()[-1])
    return medians


def measure(variant: str, runs: int) -> list[tuple[str, int, float]]:
    """Each DAG's tasks and median cost on a stack (``with``, ``without``); the ``with``
    stack also measures :func:`measure_dag_test` before it stops (a fourth field)."""
    stack = LocalStack(REPO_ROOT / ".local" / f"bench-task-cpu-{variant}")
    if variant == "without":
        empty = Path(tempfile.mkdtemp(prefix="no-local-settings-"))
        (empty / "airflow_local_settings.py").write_text("")
        own_env = stack.env
        stack.env = lambda: {**own_env(), "PYTHONPATH": f"{empty}:{own_env()['PYTHONPATH']}"}
    rows = []
    try:
        _, economics = stack.start(seed=prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
        client = stack.client()
        unpause_every_dag(client)
        conf_of = {dag_id: conf or {"day": economics.window.last_day.isoformat()} for dag_id, conf in RUNS}
        for dag_id, conf in conf_of.items():

            def triggered_and_ended(dag_id: str = dag_id, conf: dict = conf) -> Any:
                return client.wait_for_run(dag_id, client.trigger(dag_id, conf).run_id, timeout=300)

            cost, run, _ = median_cost(triggered_and_ended, runs)
            tasks = sum(1 for t in client.task_instances(dag_id, run.run_id) if t["state"] == "success")
            rows.append((dag_id, tasks, cost))
        if variant == "with":
            in_process = measure_dag_test(stack, conf_of, runs)
            rows = [(*row, in_process[row[0]]) for row in rows]
    finally:
        stack.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="runs of each DAG after the first (default 6)")
    parser.add_argument("--in-one-process", nargs=3, metavar=("DAG", "CONF", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_one_process:
        dag_id, conf, runs = args.in_one_process
        print(json.dumps(in_one_process(dag_id, json.loads(conf), int(runs))))
        return 0
    table = {variant: measure(variant, args.runs) for variant in ("with", "without")}
    print(f"\nBusy CPU-s of the whole machine per run (median of {args.runs}, after a first run that warms the stack)")
    rows = [
        (
            dag_id,
            tasks,
            f"{with_cost:.2f}",
            f"{without_cost:.2f}",
            f"{1 - with_cost / without_cost:.0%}",
            f"{dag_test:.2f}",
        )
        for (dag_id, tasks, with_cost, dag_test), (_, _, without_cost) in zip(
            table["with"], table["without"], strict=True
        )
    ]
    print(format_table(("DAG", "TASKS", "WITH (CPU-s)", "WITHOUT (CPU-s)", "SAVED", "DAG.TEST() (CPU-s)"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
