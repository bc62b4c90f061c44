"""Production approvals answered 0.5 to 5 s after the approval paused: every run must go
through. Airflow 3.3.2 fails a resumed task whose answer came before the scheduler handled
the pause (apache/airflow #72716: 3 of 12 answers given 0.1-0.8 s after the pause failed
their run before ``FleetChangeApproval`` kept an interrupted try's answer).

Each run is a production ``gpu_bundle_rollout`` (``pointer_only``) of a fleet of its own,
triggered by the admin and answered by ``approver`` through the REST API at a set delay
after the approval task parked (``awaiting_input``) - as the Required Actions view answers, with no
client-side wait. ``--parallel`` runs go at once (the DAG allows 4). Prints one row per
run and the count; exits 1 unless every run succeeded.

Run: ``.venv/bin/python bench/approval_race.py [--runs 20] [--parallel 4] [--first 0.5 --last 5]`` (on the
running ``make up`` stack, else a stack of its own under ``.local/bench-approvals``).
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stacks import BenchStack, on_a_stack
from devstack import baseline
from gpu_worker import layout
from include.naming.fleet import Fleet
from include.tables import format_table
from tests.e2e.helpers import awaiting

DAG, APPROVAL = "gpu_bundle_rollout", "approve_rollout"


def delays(runs: int, first: float, last: float) -> list[float]:
    """``runs`` answer delays spread evenly from ``first`` to ``last`` seconds after the pause."""
    if runs == 1:
        return [first]
    return [round(first + (last - first) * i / (runs - 1), 2) for i in range(runs)]


def _one(on: BenchStack, index: int, delay: float) -> tuple:
    fleet = Fleet("production", f"bench-race-{index}")
    bundles = [baseline.sample_bundle_id(release) for release in ("v1", "v2")]
    on.aws("ssm").put_parameter(
        Name=fleet.active_bundle, Value=layout.bundle_prefix(bundles[0]), Type="String", Overwrite=True
    )
    approver = on.client_of("approver")
    conf = {"fleet_stage": "production", "fleet_slug": fleet.slug, "bundle_id": bundles[1], "strategy": "pointer_only"}
    started = time.monotonic()
    run = on.client.trigger(DAG, conf)
    # the pause is the task instance parked in awaiting_input, as the CLI waits for it: an
    # answer sent while Airflow 3.3.2 is still parking the task can be recorded without
    # resuming it (the task then waits for its response timeout, a day)
    awaiting(approver, DAG, run, APPROVAL, poll=0.05)
    paused_at = time.monotonic()
    time.sleep(delay)
    answered_after = time.monotonic() - paused_at
    approver.respond(DAG, run.run_id, APPROVAL, ["Approve"])
    run = on.client.wait_for_run(DAG, run.run_id, timeout=600, poll=1)
    tries = on.client.task_instance(DAG, run.run_id, APPROVAL)["try_number"]
    return delay, round(answered_after, 2), run.state, tries, round(time.monotonic() - started, 1)


def measure(on: BenchStack, args: argparse.Namespace) -> int:
    runs = args.runs
    with ThreadPoolExecutor(args.parallel) as pool:
        rows = list(pool.map(lambda job: _one(on, *job), enumerate(delays(runs, args.first, args.last))))
    print(format_table(("DELAY (s)", "ANSWERED AFTER (s)", "RUN", "APPROVAL TRIES", "TRIGGER TO END (s)"), rows))
    succeeded = sum(row[2] == "success" for row in rows)
    raced = sum(row[3] > 1 for row in rows)
    print(f"{succeeded} of {runs} runs succeeded; Airflow interrupted {raced} approval(s), each kept its answer")
    return 0 if succeeded == runs else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--first", type=float, default=0.5, help="the first answer's delay after the pause (s)")
    parser.add_argument("--last", type=float, default=5.0, help="the last answer's delay after the pause (s)")
    args = parser.parse_args()
    return on_a_stack("bench-approvals", lambda on: measure(on, args))


if __name__ == "__main__":
    sys.exit(main())
