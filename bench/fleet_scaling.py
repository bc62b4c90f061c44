"""Scaling-policy evidence: a synthetic day through the default fleet's policy at a few
backlog targets and scale-to-zero windows (``include/fleet_scaling_sim.py``).

The default fleet is the baseline's desired_config (template sdxl-standard, max_size 2)
with its template's defaults; a busier day runs at the template's max_size limit, where
the backlog target has room to matter. Prices are the economics' Spot fallback for the
fleet's first instance type. Run: ``make bench`` or ``.venv/bin/python bench/fleet_scaling.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.baseline import DEFAULT_DESIRED_CONFIG
from devstack.fleet_scaling_sim import Policy, simulate, synthetic_day
from include.economics.infra_cost import DEFAULT_HOURLY_PRICES
from include.fleets import config as fleet_config
from include.tables import format_table

BACKLOG_TARGETS = (1.0, 2.0, 4.0, 8.0)
SCALE_TO_ZERO_MINUTES = (5, 15, 30, 60)
#: Spot reclaims per instance-hour; AWS's Spot advisor puts g4dn/g5 under 5% a month,
#: this is ten times that, so the replacements show.
INTERRUPTIONS_PER_INSTANCE_HOUR = 0.01


def _table(title: str, knob: str, jobs_per_day: int, policies: dict[float, Policy], price: float) -> float:
    jobs = synthetic_day(jobs_per_day)
    work_hours = sum(job.duration for job in jobs) / 3600
    rows, seconds = [], 0.0
    for value, policy in policies.items():
        started = time.perf_counter()
        result = simulate(
            jobs, policy, hourly_price=price, interruptions_per_instance_hour=INTERRUPTIONS_PER_INSTANCE_HOUR, seed=1
        )
        seconds += time.perf_counter() - started
        rows.append(
            (
                f"{value:g}",
                f"{result.gpu_hours:.1f}",
                f"{result.gpu_hours / work_hours:.1f}x",
                f"${result.cost_usd:.2f}",
                f"{result.p50_wait_seconds:.0f}",
                f"{result.p95_wait_seconds:.0f}",
                result.max_instances,
                result.launches,
                result.spot_interruptions,
                f"{result.finished}/{result.jobs}",
            )
        )
    print(f"\n{title}: {len(jobs)} jobs, {work_hours:.1f} GPU-hours of work")
    headers = (knob.upper(), "GPU-H", "VS WORK", "COST", "P50 WAIT S", "P95 WAIT S", "MAX", "LAUNCHES", "SPOT", "DONE")
    print(format_table(headers, rows))
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy-jobs", type=int, default=3000, help="jobs on the busier day")
    args = parser.parse_args()
    config = fleet_config.parse_desired_config(json.dumps(DEFAULT_DESIRED_CONFIG), source="baseline")
    template = fleet_config.templates()[config.template_slug]
    price = float(DEFAULT_HOURLY_PRICES[config.instance_types[0]])
    print(
        f"Fleet {config.template_slug} on {config.instance_types[0]} at ${price}/h Spot; warmup "
        f"{config.warmup_seconds} s, scale to zero after {config.scale_to_zero_minutes} min"
    )
    seconds = _table(
        f"Default fleet (max_size {config.max_size}), 500 jobs/day (seed 004's 'high' day)",
        "backlog_target",
        500,
        {t: Policy.of(config, backlog_target=t) for t in BACKLOG_TARGETS},
        price,
    )
    seconds += _table(
        f"Busier day at the template's limit (max_size {template.max_size_limit})",
        "backlog_target",
        args.busy_jobs,
        {t: Policy.of(config, backlog_target=t, max_size=template.max_size_limit) for t in BACKLOG_TARGETS},
        price,
    )
    seconds += _table(
        "Default fleet, 500 jobs/day, by scale-to-zero window (the idle tail after each busy spell)",
        "scale_to_zero_minutes",
        500,
        {m: Policy.of(config, scale_to_zero_minutes=m) for m in SCALE_TO_ZERO_MINUTES},
        price,
    )
    print(f"\n{2 * len(BACKLOG_TARGETS) + len(SCALE_TO_ZERO_MINUTES)} simulated days in {seconds:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
