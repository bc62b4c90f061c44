"""CPU a DAG run costs the machine, with and without the project's Airflow local settings
(``plugins/airflow_local_settings.py``: one botocore data loader per process, the tasks' AWS
models parsed before the scheduler forks them).

Each variant gets a stack of its own; "without" puts an empty ``airflow_local_settings``
ahead of ``plugins/`` on the stack's ``PYTHONPATH``. Every run is triggered alone and
waited for; its cost is the whole machine's busy CPU between the trigger and the end
(``/proc/stat``), so run it on a quiet machine. The first run of each DAG warms the
stack's processes and is left out.

    .venv/bin/python bench/task_cpu.py [--runs 6]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

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


def measure(variant: str, runs: int) -> list[tuple[str, int, float]]:
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
        for dag_id, conf in RUNS:
            conf = conf or {"day": economics.window.last_day.isoformat()}
            costs = []
            for _ in range(runs + 1):
                before = busy_cpu_seconds()
                run = client.wait_for_run(dag_id, client.trigger(dag_id, conf).run_id, timeout=300)
                costs.append(busy_cpu_seconds() - before)
                if run.state != "success":
                    raise SystemExit(f"{dag_id} {run.run_id} ended {run.state}")
            tasks = sum(1 for t in client.task_instances(dag_id, run.run_id) if t["state"] == "success")
            rows.append((dag_id, tasks, statistics.median(costs[1:])))
    finally:
        stack.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=6, help="runs of each DAG after the first (default 6)")
    args = parser.parse_args()
    table = {variant: measure(variant, args.runs) for variant in ("with", "without")}
    print(f"\nBusy CPU-s of the whole machine per run (median of {args.runs}, after a first run that warms the stack)")
    rows = [
        (dag_id, tasks, f"{with_cost:.2f}", f"{without_cost:.2f}", f"{1 - with_cost / without_cost:.0%}")
        for (dag_id, tasks, with_cost), (_, _, without_cost) in zip(table["with"], table["without"], strict=True)
    ]
    print(format_table(("DAG", "TASKS", "WITH (CPU-s)", "WITHOUT (CPU-s)", "SAVED"), rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
