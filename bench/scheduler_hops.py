"""How long a run waits between its tasks, and what a quicker idle scheduler costs.

A task starts two or three scheduler loops after the one before it ends, and an idle
scheduler sleeps ``[scheduler] scheduler_idle_sleep_time`` between loops (Airflow's default
1 s). For each sleep below, a stack of its own: the whole machine's busy CPU over a minute
with nothing to run, then ``ai_economics_daily`` (a chain of tasks) run one after the
other, each waited for: its median wall time and busy CPU, the first run (which warms the
processes) left out. Run it on a quiet machine.

    .venv/bin/python bench/scheduler_hops.py [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.task_cpu import busy_cpu_seconds, median_cost
from devstack.demo import unpause_every_dag
from devstack.scenarios import prepare_stack
from devstack.stack import REPO_ROOT, LocalStack
from include.tables import format_table

DAG = "ai_economics_daily"
#: seconds an idle scheduler sleeps: Airflow's default, the local stack's, a quicker one
SLEEPS = ("1.0", "0.5", "0.25")


def measure(sleep: str, runs: int) -> tuple[str, int, float, float, float]:
    stack = LocalStack(
        REPO_ROOT / ".local" / "bench-scheduler-hops",
        extra_env={"AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": sleep},
    )
    try:
        _, economics = stack.start(seed=prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
        client = stack.client()
        unpause_every_dag(client)
        time.sleep(15)  # the services settle after their start
        before = busy_cpu_seconds()
        time.sleep(60)
        idle = busy_cpu_seconds() - before
        conf = {"day": economics.window.last_day.isoformat()}
        cost, run, wall = median_cost(
            lambda: client.wait_for_run(DAG, client.trigger(DAG, conf).run_id, timeout=300, poll=0.2), runs
        )
        tasks = sum(1 for t in client.task_instances(DAG, run.run_id) if t["state"] == "success")
    finally:
        stack.stop()
    return sleep, tasks, wall, cost, idle


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="runs after the first (default 5)")
    args = parser.parse_args()
    rows = [measure(sleep, args.runs) for sleep in SLEEPS]
    print(f"\n{DAG} run alone on one stack (median of {args.runs}); busy CPU of the whole machine")
    print(
        format_table(
            ("IDLE SLEEP (S)", "TASKS", "RUN WALL (S)", "RUN CPU (CPU-S)", "IDLE (CPU-S A MINUTE)"),
            [(sleep, tasks, f"{wall:.1f}", f"{cpu:.1f}", f"{idle:.1f}") for sleep, tasks, wall, cpu, idle in rows],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
