"""The daily economics job on a big day in MariaDB: rows/s and peak memory of the whole
gated computation, next to the bare ``SELECT ... GROUP BY`` on the same data.

    .venv/bin/python bench/economics_day.py                # 1M and 10M rows
    .venv/bin/python bench/economics_day.py --rows 1000000

Each size gets a database of its own on the local MariaDB (``BP_BENCH_MARIADB_URL``,
default ``mysql+pymysql://root@127.0.0.1:3306``), generated once (rows sorted by time,
as an append-only ledger is) and reused by later runs. The pipeline runs in a child
process so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from datetime import time as clock
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "plugins")]

from include.economics import ledger  # noqa: E402
from include.economics.prices import DEFAULT_CATALOGUE  # noqa: E402

SERVER = os.environ.get("BP_BENCH_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306")
DAY = date(2026, 11, 5)
MODELS = np.array(["gpt-4.1-mini", "gpt-4.1", "claude-sonnet-4", "gemini-2.5-pro", "text-embedding-3-small"])
FEATURES = np.array(["chat", "video-effects", "image-gen", "search", "summarize", "agents", "translate", "voice"])
PLANS = np.array(["free", "basic", "pro", "team"])
COLUMNS = [
    "request_id", "user_id", "feature_name", "model_name", "input_tokens", "cached_input_tokens", "output_tokens",
    "reasoning_tokens", "total_tokens", "estimated_cost", "request_duration_ms", "success", "error_type", "release",
    "created_at",
]  # fmt: skip


def engine(database: str = "") -> sa.engine.Engine:
    return sa.create_engine(f"{SERVER}/{database}", connect_args={"local_infile": True})


def generate(database: str, rows: int, users: int) -> float:
    """Create and load the database; return seconds spent."""
    started = time.perf_counter()
    with engine().connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")
        connection.exec_driver_sql(f"CREATE DATABASE {database}")
    target = engine(database)
    ledger.create_ledger_schema(target)
    rng = np.random.default_rng(42)
    seconds = np.sort(rng.integers(0, 86_400, size=rows))
    start = datetime.combine(DAY, clock.min)
    with tempfile.TemporaryDirectory() as folder:
        for part, offset in enumerate(range(0, rows, 1_000_000)):
            n = min(1_000_000, rows - offset)
            inp = rng.lognormal(7.5, 1.0, n).astype(np.int64) + 1
            out = rng.lognormal(5.5, 0.8, n).astype(np.int64)
            ok = rng.random(n) > 0.02
            frame = pd.DataFrame(
                {
                    "request_id": [f"req-{offset + k:010d}" for k in range(n)],
                    "user_id": rng.integers(1, users + 1, n),
                    "feature_name": FEATURES[rng.integers(0, len(FEATURES), n)],
                    "model_name": MODELS[rng.integers(0, len(MODELS), n)],
                    "input_tokens": inp,
                    "cached_input_tokens": (inp * rng.choice([0, 0, 0.3, 0.6], n)).astype(np.int64),
                    "output_tokens": out,
                    "reasoning_tokens": "\\N",
                    "total_tokens": inp + out,
                    "estimated_cost": np.round((inp * 2 + out * 8) / 1e6, 6),
                    "request_duration_ms": rng.lognormal(7, 0.6, n).astype(np.int64),
                    "success": ok.astype(int),
                    "error_type": np.where(ok, "\\N", "timeout"),
                    "release": "2026.11.2",
                    "created_at": (start + pd.to_timedelta(seconds[offset : offset + n], unit="s")).strftime(
                        "%Y-%m-%d %H:%M:%S"
                    ),
                }
            )
            path = Path(folder) / f"part{part}.tsv"
            frame[COLUMNS].to_csv(path, sep="\t", header=False, index=False)
            with target.begin() as connection:
                connection.exec_driver_sql(
                    # backquoted: `release` is a reserved word in MariaDB
                    f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE ai_usage_logs ({', '.join(f'`{c}`' for c in COLUMNS)})"
                )
            print(f"    loaded {offset + n:,} rows", flush=True)
    plans = pd.DataFrame({"user_id": np.arange(1, users + 1), "plan": PLANS[rng.integers(0, len(PLANS), users)]})
    plans["valid_from"] = datetime(2026, 1, 1)
    plans["valid_to"] = None
    with target.begin() as connection:
        connection.execute(ledger.user_plans.insert(), plans.to_dict("records"))
        connection.execute(ledger.fx_rates.insert(), [{"day": DAY, "currency": "EUR", "usd_per_unit": 1.08}])
        connection.exec_driver_sql("ANALYZE TABLE ai_usage_logs, user_plans")
    return time.perf_counter() - started


def row_count(database: str) -> int:
    try:
        with engine(database).connect() as connection:
            return connection.exec_driver_sql("SELECT COUNT(*) FROM ai_usage_logs").scalar_one()
    except sa.exc.SQLAlchemyError:
        return -1


def bare_group_by(database: str) -> float:
    """The floor: one GROUP BY over the day, no join, no pricing, no gate."""
    query = (
        "SELECT user_id, feature_name, model_name, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), "  # noqa: S608 - a fixed benchmark query
        "SUM(output_tokens), SUM(total_tokens) FROM ai_usage_logs "
        f"WHERE created_at >= '{DAY} 00:00:00' AND created_at < '{DAY} 23:59:59.999999' "
        "GROUP BY user_id, feature_name, model_name"
    )
    started = time.perf_counter()
    with engine(database).connect() as connection:
        connection.exec_driver_sql(query).fetchall()
    return time.perf_counter() - started


CHILD = """
import resource, sys, time, json
import sqlalchemy as sa
from datetime import date
from include.economics import daily
from include.economics.prices import PriceBook
url, catalogue = sys.argv[1], sys.argv[2]
engine = sa.create_engine(url)
warehouse = sa.create_engine("sqlite://")
started = time.perf_counter()
result = daily.compute_day(engine, warehouse, PriceBook.from_csv(catalogue), date.fromisoformat(sys.argv[3]))
elapsed = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "peak_mb": peak_kb / 1024, "gate": result.gate.passed,
                  "cost_rows": len(result.tables["ai_cost_daily"])}))
"""


def pipeline(database: str) -> dict:
    import json

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]))
    url = f"{SERVER}/{database}"
    result = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(DEFAULT_CATALOGUE), DAY.isoformat()],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        database = f"bp_bench_{rows}"
        load = "reused"
        if row_count(database) != rows:
            print(f"Generating {rows:,} ledger rows in MariaDB database {database}", flush=True)
            load = f"{generate(database, rows, args.users):.0f}s"
        bare = bare_group_by(database)
        run = pipeline(database)
        results.append((rows, load, bare, run))
    print(f"\nDaily economics on one day of ledger in MariaDB ({args.users:,} users), 2-core machine")
    header = ("ledger rows", "load", "bare GROUP BY s", "pipeline s", "rows/s", "peak MB", "gate", "cost rows")
    widths = (12, 7, 16, 11, 10, 8, 5, 10)
    print(" ".join(f"{title:>{width}}" for title, width in zip(header, widths, strict=True)))
    for rows, load, bare, run in results:
        print(
            f"{rows:>12,} {load:>7} {bare:>16.1f} {run['seconds']:>11.1f} {rows / run['seconds']:>10,.0f} "
            f"{run['peak_mb']:>8.0f} {'pass' if run['gate'] else 'FAIL':>5} {run['cost_rows']:>10,}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
