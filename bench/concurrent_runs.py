"""Load on one local stack: rollouts and economics days triggered at once through the REST
API, as a busy CI and a catchup would. Every run must reach a terminal state and the
api-server must never answer HTTP 5xx (the failure mode of the old SQLite stack).

Uses the running ``make up`` stack when there is one (``.local/up.json``), else starts
its own under ``.local/bench-concurrent``. Rollouts of one fleet overlap on purpose: the
fleet lock refuses all but one at a time, and a refusal is a correct terminal state (it
is counted apart from other failures). Run: ``make bench`` or
``.venv/bin/python bench/concurrent_runs.py [--rollouts 10] [--days 10]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stacks import on_a_stack
from devstack import baseline
from include.cli.airflow_client import AirflowApiError, AirflowClient, DagRun
from include.tables import format_table

ROLLOUT, ECONOMICS = "gpu_bundle_rollout", "ai_economics_daily"
#: the longest wait for all runs to end: economics days run one at a time (max_active_runs=1)
TIMEOUT = 1800
LOCK_REFUSAL = "one change per fleet at a time"


def _confs(rollouts: int, days: int, last_day) -> list[tuple[str, dict]]:
    bundles = [baseline.sample_bundle_id(release) for release in ("v2", "v3")]
    confs = [
        (
            ROLLOUT,
            {
                "fleet_stage": "staging",
                "fleet_slug": "gpu-default",
                "bundle_id": bundles[i % 2],
                "strategy": "pointer_only",
            },
        )
        for i in range(rollouts)
    ]
    confs += [(ECONOMICS, {"day": (last_day - timedelta(days=i)).isoformat()}) for i in range(days)]
    return confs


def _api_errors(log: Path, since: int) -> Counter:
    """HTTP status >= 500 in the api-server's access log, after byte offset ``since``."""
    found: Counter = Counter()
    with log.open(errors="replace") as lines:
        lines.seek(since)
        for line in lines:
            if "status_code=5" in line:
                found[line.rsplit("status_code=", 1)[1].strip()] += 1
    return found


def _outcome(client: AirflowClient, run: DagRun) -> str:
    if run.state == "success":
        return "success"
    failed = [t["task_id"] for t in client.task_instances(run.dag_id, run.run_id) if t["state"] == "failed"]
    if run.dag_id == ROLLOUT and "acquire_lock" in failed:
        lines = client.task_log_lines(run.dag_id, run.run_id, "acquire_lock", 1)
        if any(LOCK_REFUSAL in line for line in lines):
            return "refused: fleet locked"
    return f"{run.state} ({', '.join(failed) or 'no failed task'})"


def measure(stack_client: AirflowClient, log: Path, rollouts: int, days: int, last_day) -> int:
    confs = _confs(rollouts, days, last_day)
    offset = log.stat().st_size
    trigger_errors: list[str] = []

    def trigger(item: tuple[str, dict]) -> DagRun | None:
        try:
            return stack_client.trigger(*item)
        except AirflowApiError as error:
            trigger_errors.append(f"{item[0]}: {error}")
            return None

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(confs)) as pool:
        runs = [run for run in pool.map(trigger, confs) if run is not None]
    triggered_in = time.monotonic() - started
    ended: dict[str, tuple[DagRun, float]] = {}
    while len(ended) < len(runs) and time.monotonic() - started < TIMEOUT:
        for run in runs:
            if run.run_id in ended:
                continue
            current = stack_client.get_run(run.dag_id, run.run_id)
            if current.state in ("success", "failed"):
                ended[run.run_id] = (current, time.monotonic() - started)
        time.sleep(2)

    rows = []
    for dag_id in (ROLLOUT, ECONOMICS):
        mine = [ended[r.run_id] for r in runs if r.dag_id == dag_id and r.run_id in ended]
        outcomes = Counter(_outcome(stack_client, run) for run, _ in mine)
        waiting = sum(1 for r in runs if r.dag_id == dag_id and r.run_id not in ended)
        last = max((seconds for _, seconds in mine), default=0.0)
        summary = "; ".join(f"{count} {what}" for what, count in sorted(outcomes.items()))
        rows.append(
            [dag_id, len(mine) + waiting, summary + (f"; {waiting} NOT ENDED" if waiting else ""), f"{last:.0f}"]
        )
    errors = _api_errors(log, offset)
    print(f"{len(confs)} runs triggered at once in {triggered_in:.1f}s; trigger refusals: {len(trigger_errors)}")
    print(format_table(["DAG", "runs", "terminal states", "last ended after (s)"], rows))
    print(f"api-server HTTP 5xx answers while they ran: {sum(errors.values())} {dict(errors) or ''}")
    for line in trigger_errors:
        print(f"  trigger refused: {line}")
    unfinished = len(runs) - len(ended)
    return 0 if not (unfinished or errors or trigger_errors) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    return on_a_stack(
        "bench-concurrent",
        lambda on: measure(on.client, on.logs_dir / "api-server.log", args.rollouts, args.days, last_day),
    )


if __name__ == "__main__":
    sys.exit(main())
