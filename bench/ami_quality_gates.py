"""What the AMI quality gates cost and save, on one local stack: the time the smoke test
adds to a bake, and the time a bake skipped as unchanged saves.

Runs ``gpu_ami_build_and_bake`` on staging/gpu-default (provisioned first: the smoke
test launches in the fleet), one run at a time, ``--runs`` times each: a forced build
with the smoke test, a forced build without it, and a bake of unchanged inputs (skipped).
On the emulator a "build" is the packer test double and a "boot" is moto's instance, so
the figures are the pipeline's own overhead (scheduling, deferrals, the emulator's
calls), not AWS's: on AWS a smoke test adds an instance boot, its status checks and
ComfyUI's start (minutes), and a skipped bake saves a whole Packer build.

Uses the running ``make up`` stack when there is one (``.local/up.json``), else starts
its own under ``.local/bench-ami``. Run: ``.venv/bin/python bench/ami_quality_gates.py
[--runs 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._stacks import on_a_stack
from include.cli.airflow_client import AirflowClient
from include.tables import format_table

DAG = "gpu_ami_build_and_bake"
FLEET = {"fleet_stage": "staging", "fleet_slug": "gpu-default"}
VARIANTS = {
    "build + smoke test": {"mode": "bake", "force_build": True, "smoke_test": True},
    "build, no smoke test": {"mode": "bake", "force_build": True, "smoke_test": False},
    "unchanged (skipped)": {"mode": "bake"},
}


def _seconds(stamp_from: str | None, stamp_to: str | None) -> float | None:
    if not (stamp_from and stamp_to):
        return None
    start = datetime.fromisoformat(stamp_from.replace("Z", "+00:00"))
    return (datetime.fromisoformat(stamp_to.replace("Z", "+00:00")) - start).total_seconds()


def _run(client: AirflowClient, conf: dict) -> tuple[float, float | None]:
    run = client.trigger(DAG, {**FLEET, **conf})
    run = client.wait_for_run(DAG, run.run_id, timeout=600, poll=1)
    if run.state != "success":
        raise SystemExit(f"{DAG} {run.run_id} ended {run.state}: the figures would be wrong")
    smoke = next(t for t in client.task_instances(DAG, run.run_id) if t["task_id"] == "smoke_test_image")
    ran = smoke["state"] == "success"  # skipped: no smoke test to time
    return run.duration_seconds or 0.0, _seconds(smoke.get("start_date"), smoke.get("end_date")) if ran else None


def measure(client: AirflowClient, runs: int) -> int:
    provisioned = client.trigger("gpu_fleet_provision", {**FLEET, "action": "apply"})
    if client.wait_for_run("gpu_fleet_provision", provisioned.run_id, timeout=600, poll=1).state != "success":
        raise SystemExit("gpu_fleet_provision failed: the smoke test needs the fleet")
    _run(client, VARIANTS["build + smoke test"])  # the fleet's image is now built from today's inputs
    medians: dict[str, float] = {}
    rows = []
    for name, conf in VARIANTS.items():
        measured = [_run(client, conf) for _ in range(runs)]
        medians[name] = statistics.median(total for total, _ in measured)
        smoke = [task for _, task in measured if task is not None]
        rows.append([name, runs, f"{medians[name]:.1f}", f"{statistics.median(smoke):.1f}" if smoke else "-"])
    print(format_table(["BAKE", "runs", "run median (s)", "smoke_test_image median (s)"], rows))
    added = medians["build + smoke test"] - medians["build, no smoke test"]
    saved = medians["build + smoke test"] - medians["unchanged (skipped)"]
    print(f"the smoke test adds {added:.1f} s to a bake; a skipped bake takes {saved:.1f} s less than a full one")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    return on_a_stack("bench-ami", lambda on: measure(on.client, args.runs))


if __name__ == "__main__":
    sys.exit(main())
