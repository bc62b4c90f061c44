"""The weekly review pack against warehouses of growing size: seconds per step.

    .venv/bin/python bench/weekly_review.py                 # 10k and 100k per-user rows a day
    .venv/bin/python bench/weekly_review.py --rows 50000

Two weeks of warehouse (the review reads a week and the week before) are written with
``warehouse.publish``, as the daily DAG writes them: ``ai_cost_daily`` (one row per
user, feature, model and plan: the only table that grows with traffic) and the small
rollups derived from it. Each size is timed on SQLite and on the local MariaDB
(``BP_BENCH_MARIADB_URL``, default ``mysql+mysqldb://root@127.0.0.1:3306``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "plugins")]

from include.economics import review_pack, warehouse  # noqa: E402
from include.economics.calendar import IsoWeek  # noqa: E402
from include.economics.review import build_review  # noqa: E402
from include.economics.week_reads import load_week  # noqa: E402
from include.tables import format_table  # noqa: E402

SERVER = os.environ.get("BP_BENCH_MARIADB_URL", "mysql+mysqldb://root@127.0.0.1:3306")
WEEK = IsoWeek(2026, 47)
MODELS = np.array(["gpt-4.1-mini", "gpt-4.1", "claude-sonnet-4", "gemini-2.5-pro", "text-embedding-3-small"])
FEATURES = np.array(["chat", "video-effects", "image-gen", "search", "summarize", "agents", "translate", "voice"])
PLANS = np.array(["free", "basic", "pro", "team"])
SUMMED = ["requests", "failures", "input_tokens", "cached_input_tokens", "output_tokens", "total_tokens", "cost_usd"]


def day_tables(day, rows: int, rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    users = rng.integers(1, rows // 3, size=rows)
    requests = rng.integers(1, 40, size=rows)
    inputs = requests * rng.integers(200, 5000, size=rows)
    outputs = requests * rng.integers(50, 900, size=rows)
    cost = pd.DataFrame(
        {
            "day": day,
            "user_id": users,
            "feature_name": FEATURES[rng.integers(0, len(FEATURES), size=rows)],
            "model_name": MODELS[rng.integers(0, len(MODELS), size=rows)],
            "plan": PLANS[users % len(PLANS)],
            "requests": requests,
            "failures": rng.binomial(requests, 0.02),
            "input_tokens": inputs,
            "cached_input_tokens": inputs // 4,
            "output_tokens": outputs,
            "total_tokens": inputs + outputs,
            "cost_usd": [Decimal(int(c)) / 1_000_000 for c in (inputs * 2 + outputs * 8)],
            "p50_ms": rng.uniform(200, 3000, size=rows).round(1),
            "p95_ms": rng.uniform(3000, 12000, size=rows).round(1),
        }
    ).drop_duplicates(["user_id", "feature_name", "model_name", "plan"])
    tables = {"ai_cost_daily": cost}
    for name, keys in (
        ("ai_feature_daily", ["feature_name"]),
        ("ai_model_daily", ["model_name"]),
        ("ai_plan_daily", ["plan"]),
        ("ai_usage_daily", []),
    ):
        grouped = cost.groupby(keys) if keys else cost.assign(_all=1).groupby("_all")
        table = grouped[SUMMED].sum().join(grouped["user_id"].nunique().rename("dau"))
        table = table.join(grouped[["p50_ms", "p95_ms"]].median()).reset_index().drop(columns="_all", errors="ignore")
        table.insert(0, "day", day)
        table["failure_rate"] = (table["failures"] / table["requests"]).round(6)
        table["peak_tokens_per_minute"] = table["total_tokens"] // 600
        tables[name] = table
    by_plan = tables["ai_plan_daily"].set_index("plan")["cost_usd"]
    margins = [
        {"plan": plan, "revenue_usd": ai * 3, "ai_cost_usd": ai, "infra_cost_usd": Decimal(0), "margin_usd": ai * 2}
        for plan, ai in [*by_plan.items(), ("all", sum(by_plan, Decimal(0)))]
    ]
    tables["ai_margin_daily"] = pd.DataFrame(margins).assign(day=day, margin_pct=Decimal("66.67"))
    return tables


def fill(engine: sa.engine.Engine, rows: int) -> float:
    started = time.perf_counter()
    rng = np.random.default_rng(5)
    for day in [*WEEK.previous().days(), *WEEK.days()]:
        warehouse.publish(engine, day, day_tables(day, rows, rng))
    return time.perf_counter() - started


def timed(engine: sa.engine.Engine, folder: Path) -> dict[str, float]:
    seconds = {}
    started = time.perf_counter()
    this, before = load_week(engine, WEEK), load_week(engine, WEEK.previous())
    seconds["read warehouse"] = time.perf_counter() - started
    started = time.perf_counter()
    review = build_review(this, before)
    seconds["review"] = time.perf_counter() - started
    started = time.perf_counter()
    review_pack.render_html(review, "bench")
    seconds["charts + HTML"] = time.perf_counter() - started
    started = time.perf_counter()
    review_pack.write_pack(review, folder, "bench")
    seconds["whole pack (HTML, PDF, MD)"] = time.perf_counter() - started
    seconds["total"] = seconds["read warehouse"] + seconds["review"] + seconds["whole pack (HTML, PDF, MD)"]
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="ai_cost_daily rows per day (repeatable)")
    sizes = parser.parse_args().rows or [10_000, 100_000]
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for rows in sizes:
            for kind in ("sqlite", "mariadb"):
                database = f"bp_bench_weekly_{rows}"
                if kind == "sqlite":
                    engine = sa.create_engine(f"sqlite:///{scratch}/{database}.db")
                else:
                    with sa.create_engine(SERVER).connect() as connection:
                        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")
                        connection.exec_driver_sql(f"CREATE DATABASE {database}")
                    engine = sa.create_engine(f"{SERVER}/{database}")
                loaded = fill(engine, rows)
                seconds = timed(engine, Path(scratch) / f"pack-{kind}-{rows}")
                results.append((kind, f"{rows:,}", f"{loaded:.1f}", *(f"{s:.2f}" for s in seconds.values())))
                print(f"  {kind} {rows:,} rows/day done", flush=True)
                if kind == "mariadb":
                    with engine.connect() as connection:
                        connection.exec_driver_sql(f"DROP DATABASE {database}")
                engine.dispose()
    print(
        format_table(
            ("DB", "ROWS/DAY", "FILL 14 DAYS S", "READ S", "REVIEW S", "CHARTS+HTML S", "PACK S", "TOTAL S"), results
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
