"""What the dev nodes' cost costs the daily economics run: ``usage.dev_node_days`` over a
team's month of lifecycle events, the work ``ai_economics_daily`` does for one day (it
reads every event: a node started a week ago and still running counts today).

Synthetic events: ``--nodes`` dev nodes, each started and stopped once or twice a
weekday for ``--days`` days. Pure Python, no stack.
Run: ``.venv/bin/python bench/dev_node_cost.py [--nodes 200 --days 30]``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.economics_demo import lifecycle_events
from include.devnodes import usage
from include.economics.infra_cost import DEFAULT_HOURLY_PRICES
from include.tables import format_table


def events(nodes: int, days: int, last_day: date) -> list[dict]:
    """``nodes`` engineers' weekday sessions (one or two, two hours each) over ``days`` days."""
    rng = random.Random(7)
    found = []
    for n in range(nodes):
        node = {"stage": "staging", "name": f"dev-{n}", "owner": f"user{n % 40}", "instance_type": "g5.xlarge"}
        for offset in range(days):
            day = last_day - timedelta(days=offset)
            if day.weekday() < 5:
                starts = sorted(rng.sample(range(8, 20, 3), rng.choice((1, 2))))
                found += lifecycle_events(node, day, [(start, start + 2) for start in starts])
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    last_day = date(2026, 11, 27)  # a Friday
    rows = []
    for nodes in sorted({10, args.nodes}):
        found = events(nodes, args.days, last_day)
        started = time.perf_counter()
        days = usage.dev_node_days(found, last_day, datetime(2026, 11, 28, tzinfo=UTC), DEFAULT_HOURLY_PRICES)
        seconds = time.perf_counter() - started
        hours = sum(d.node_hours for d in days)
        rows.append(
            [nodes, len(found), f"{seconds * 1000:.1f} ms", len(days), f"{hours:.1f}", f"${usage.total(days):.2f}"]
        )
    print(format_table(["nodes", "events", "one day's cost", "nodes that ran", "node-hours", "cost"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
