"""What judging a rollout by the fleet's metrics costs: a refresh rollout's time with an
analysis at its end only, and with one at a 50% checkpoint too, against the bake windows
and the checkpoint pause it is made of.

Runs ``gpu_bundle_rollout`` (strategy ``refresh``) on staging/gpu-default with 2 nodes,
one run at a time, ``--runs`` times each, alternating bundles v2 and v3, with a bake
window of ``--bake`` seconds; the node double (tests/doubles/fleet_traffic.py) reports
every 5 s. A run is made of its bake windows (one per checkpoint and one at the end),
AWS's pause at each checkpoint past the bake window (the time to judge, see
``Thresholds.checkpoint_delay_seconds``), and the rest: scheduling, deferrals, the
emulator's refresh and the node checks. The last column is that rest. On AWS, each
replaced node adds its boot and warmup besides.

Uses the running ``make up`` stack when there is one (``.local/up.json``), else starts
its own under ``.local/bench-verdicts``. Run: ``.venv/bin/python bench/rollout_verdicts.py
[--runs 3] [--bake 15]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stacks import BenchStack, on_a_stack
from devstack import baseline
from devstack.scenarios import scale_staging_fleet
from include.cli.airflow_client import AirflowClient
from include.rollouts.analysis import Thresholds
from include.tables import format_table

DAG = "gpu_bundle_rollout"
FLEET = {"fleet_stage": "staging", "fleet_slug": "gpu-default", "strategy": "refresh", "min_jobs": 5}
VARIANTS = {"analysis at the end": [], "at 50% and at the end": [50, 100]}


def _run(client: AirflowClient, conf: dict) -> tuple[float, float]:
    run = client.trigger(DAG, {**FLEET, **conf})
    run = client.wait_for_run(DAG, run.run_id, timeout=900, poll=1)
    if run.state != "success":
        raise SystemExit(f"{DAG} {run.run_id} ended {run.state}: the figures would be wrong")
    judge = next(t for t in client.task_instances(DAG, run.run_id) if t["task_id"] == "judge_refresh")
    start, end = (datetime.fromisoformat(judge[k].replace("Z", "+00:00")) for k in ("start_date", "end_date"))
    return run.duration_seconds or 0.0, (end - start).total_seconds()


def measure(on: BenchStack, runs: int, bake: int) -> int:
    client = on.client
    provisioned = client.trigger(
        "gpu_fleet_provision", {"fleet_stage": "staging", "fleet_slug": "gpu-default", "action": "apply"}
    )
    if client.wait_for_run("gpu_fleet_provision", provisioned.run_id, timeout=600, poll=1).state != "success":
        raise SystemExit("gpu_fleet_provision failed: the rollout needs the fleet")
    if on.own is None:
        print("On a `make up` stack: scale its staging fleet to 2 nodes first")
    else:
        print(scale_staging_fleet(on.own, 2))
    bundles = [baseline.sample_bundle_id(release) for release in ("v2", "v3")]
    pause = Thresholds(bake_window_seconds=bake).checkpoint_delay_seconds() - bake
    rows, count = [], 0
    for name, checkpoints in VARIANTS.items():
        measured = []
        for _ in range(runs):
            conf = {"bundle_id": bundles[count % 2], "checkpoint_percentages": checkpoints, "bake_window_seconds": bake}
            measured.append(_run(client, conf))
            count += 1
        total = statistics.median(t for t, _ in measured)
        judged = statistics.median(j for _, j in measured)
        waited = bake * (len(checkpoints) or 1) + pause * max(len(checkpoints) - 1, 0)
        rows.append([name, runs, f"{total:.1f}", f"{judged:.1f}", waited, f"{total - waited:.1f}"])
    print(
        format_table(["ROLLOUT", "runs", "run median (s)", "judge_refresh (s)", "bake + pause (s)", "rest (s)"], rows)
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--bake", type=int, default=15)
    args = parser.parse_args()
    return on_a_stack("bench-verdicts", lambda on: measure(on, args.runs, args.bake))


if __name__ == "__main__":
    sys.exit(main())
