"""The daily economics job on a big day in MariaDB, next to the bare ``SELECT ... GROUP BY``
of the same day.

    .venv/bin/python bench/economics_day.py                          # 1M and 10M rows
    .venv/bin/python bench/economics_day.py --rows 1000000 --no-dag

Each size gets a database of its own on the local MariaDB (``BP_BENCH_MARIADB_URL``,
default ``mysql+mysqldb://root@127.0.0.1:3306``, the project's driver), generated once
(rows sorted by time, as an append-only ledger is) and reused by later runs. Per size:

* **bare**: one ``GROUP BY user, feature, model`` over the day, fetched whole - no plan
  join, no pricing, no percentiles, no gate: the floor;
* **computation**: :func:`include.economics.daily.compute_day` as the DAG's ``compute``
  task calls it (the per-user level streamed to a Parquet file), in a child process
  that has imported the project, so its peak RSS is its own;
* **whole DAG**: ``airflow dags test ai_economics_daily`` as users run it (gate, publish
  to a SQLite warehouse, Parquet to S3, InfluxDB line protocol, alerts), in an Airflow
  home of its own migrated beforehand, against a moto server; its peak RSS is the
  ``dags test`` process's, which runs every task.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
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

SERVER = os.environ.get("BP_BENCH_MARIADB_URL", "mysql+mysqldb://root@127.0.0.1:3306")
DAY = date(2026, 11, 5)
MODELS = np.array(["gpt-4.1-mini", "gpt-4.1", "claude-sonnet-4", "gemini-2.5-pro", "text-embedding-3-small"])
FEATURES = np.array(["chat", "video-effects", "image-gen", "search", "summarize", "agents", "translate", "voice"])
PLANS = np.array(["free", "basic", "pro", "team"])
COLUMNS = [
    "request_id", "user_id", "feature_name", "model_name", "input_tokens", "cached_input_tokens", "output_tokens",
    "reasoning_tokens", "total_tokens", "estimated_cost", "request_duration_ms", "success", "error_type", "release",
    "created_at",
]  # fmt: skip
#: The issue's limits: computation and whole DAG against the bare GROUP BY, and memory.
COMPUTATION_LIMIT, DAG_LIMIT, PEAK_LIMIT_MB = 1.5, 2.5, 1024


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
    target.dispose()
    return time.perf_counter() - started


def row_count(database: str) -> int:
    try:
        with engine(database).connect() as connection:
            return connection.exec_driver_sql("SELECT COUNT(*) FROM ai_usage_logs").scalar_one()
    except sa.exc.SQLAlchemyError:
        return -1


def ensure_ledger(database: str, rows: int, users: int) -> str:
    """The database, generated when it is missing or of another size; how it was had."""
    if row_count(database) == rows:
        return "reused"
    print(f"Generating {rows:,} ledger rows in MariaDB database {database}", flush=True)
    return f"{generate(database, rows, users):.0f}s"


def drop(database: str) -> None:
    with engine().connect() as connection:
        connection.exec_driver_sql(f"DROP DATABASE IF EXISTS {database}")


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


COMPUTATION = """
import json, re, sys, tempfile, time
from datetime import date
import great_expectations.expectations  # imported as by a worker that ran a task before (the DAG figure has it)
import sqlalchemy as sa
from include.economics import daily, exports
from include.economics.prices import PriceBook
url, catalogue, day = sys.argv[1], sys.argv[2], date.fromisoformat(sys.argv[3])
ledger, warehouse, book = sa.create_engine(url), sa.create_engine("sqlite://"), PriceBook.from_csv(catalogue)
with tempfile.TemporaryFile() as handle:
    started = time.perf_counter()
    per_user = exports.ParquetChunks("ai_cost_daily", handle)
    result = daily.compute_day(ledger, warehouse, book, day, cost_rows=per_user.write)
    per_user.close()
    elapsed = time.perf_counter() - started
# VmHWM, not ru_maxrss: Linux carries the parent's RSS at fork into ru_maxrss across exec
peak_kb = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
print(json.dumps({"seconds": elapsed, "peak_mb": peak_kb / 1024,
                  "gate": result.gate.passed, "cost_rows": per_user.rows}))
"""


def _python_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]))


def computation(database: str) -> dict:
    """The gated computation of the day in a child process: seconds, peak MB, gate, rows."""
    result = subprocess.run(
        [sys.executable, "-c", COMPUTATION, f"{SERVER}/{database}", str(DEFAULT_CATALOGUE), DAY.isoformat()],
        capture_output=True,
        text=True,
        env=_python_env(),
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


#: Runs a command and prints the peak RSS of its process (tasks run inside ``dags test``).
PEAK_OF = "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); " + (
    "print('peak_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)"
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def whole_dag(database: str, home: Path) -> dict:
    """``airflow dags test ai_economics_daily`` for the day: seconds, peak MB, rows published."""
    port = _free_port()
    env = _python_env() | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW_CONN_AI_LEDGER": json.dumps(
            {"conn_type": "mysql", "host": "127.0.0.1", "port": 3306, "login": "root", "schema": database}
        ),
        "AIRFLOW_CONN_AI_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(home / "warehouse.db")}),
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": "us-east-1", "endpoint_url": f"http://127.0.0.1:{port}"},
            }
        ),
        "AIRFLOW_VAR_ECONOMICS_S3_URI": "s3://bp-bench-economics/economics/",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    airflow = str(Path(sys.executable).with_name("airflow"))
    subprocess.run([airflow, "db", "migrate"], env=env, check=True, capture_output=True)
    emulator = subprocess.Popen(
        [sys.executable, "-m", "devstack.moto_server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import boto3

        deadline = time.monotonic() + 60
        while True:
            try:
                s3 = boto3.client(
                    "s3",
                    endpoint_url=f"http://127.0.0.1:{port}",
                    region_name="us-east-1",
                    aws_access_key_id="testing",
                    aws_secret_access_key="testing",  # noqa: S106 - the emulator accepts any key
                )
                s3.create_bucket(Bucket="bp-bench-economics")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        conf = json.dumps({"day": DAY.isoformat()})
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", PEAK_OF, airflow, "dags", "test", "ai_economics_daily", "-c", conf],
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
    finally:
        emulator.terminate()
        emulator.wait(30)
    peak_kb = next((int(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("peak_kb")), 0)
    warehouse = sa.create_engine(f"sqlite:///{home / 'warehouse.db'}")
    try:
        with warehouse.connect() as connection:
            published = connection.exec_driver_sql(
                f"SELECT COUNT(*) FROM ai_cost_daily WHERE day = '{DAY}'"  # noqa: S608 - a fixed day
            ).scalar_one()
    except sa.exc.SQLAlchemyError:
        published = 0
    if run.returncode or not published:
        (home / "dags-test.log").write_text(run.stdout + run.stderr)
        raise RuntimeError(f"airflow dags test failed (rc {run.returncode}); its output: {home / 'dags-test.log'}")
    return {"seconds": elapsed, "peak_mb": peak_kb / 1024, "published": published, "tasks": task_seconds(run.stdout)}


TASK_EDGE = re.compile(r"^(\S+) .*\[DAG TEST\] (starting|end task) task_id=(\S+)")


def task_seconds(output: str) -> dict[str, float]:
    """Each task's seconds in a ``dags test`` log, from its start to its end line."""
    started, seconds = {}, {}
    for line in output.splitlines():
        found = TASK_EDGE.match(line)
        if found:
            moment = datetime.fromisoformat(found.group(1).replace("Z", "+00:00"))
            if found.group(2) == "starting":
                started[found.group(3)] = moment
            elif found.group(3) in started:
                seconds[found.group(3)] = (moment - started[found.group(3)]).total_seconds()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--no-dag", action="store_true", help="skip the whole-DAG run (airflow dags test)")
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        database = f"bp_bench_{rows}"
        load = ensure_ledger(database, rows, args.users)
        bare = bare_group_by(database)
        run = computation(database)
        dag = None
        if not args.no_dag:
            with tempfile.TemporaryDirectory(prefix="bp-bench-airflow-") as home:
                dag = whole_dag(database, Path(home))
        results.append((rows, load, bare, run, dag))
        print(f"    {rows:,} rows: bare {bare:.1f}s, computation {run['seconds']:.1f}s", flush=True)
        if dag:
            tasks = ", ".join(f"{task} {seconds:.1f}s" for task, seconds in dag["tasks"].items())
            print(f"    whole DAG {dag['seconds']:.1f}s; its tasks: {tasks}", flush=True)
    print(f"\nDaily economics on one day of ledger in MariaDB ({args.users:,} users), {os.cpu_count()}-core machine")
    header = (
        "ledger rows", "load", "bare s", "compute s", "x bare", "DAG s", "x bare", "rows/s", "peak MB", "DAG MB",
        "gate", "cost rows",
    )  # fmt: skip
    widths = (12, 7, 8, 10, 7, 8, 7, 10, 8, 7, 5, 10)
    print(" ".join(f"{title:>{width}}" for title, width in zip(header, widths, strict=True)))
    for rows, load, bare, run, dag in results:
        dag_s, dag_x, dag_mb = (
            (f"{dag['seconds']:.1f}", f"{dag['seconds'] / bare:.2f}", f"{dag['peak_mb']:.0f}") if dag else ("-",) * 3
        )
        print(
            f"{rows:>12,} {load:>7} {bare:>8.1f} {run['seconds']:>10.1f} {run['seconds'] / bare:>7.2f} {dag_s:>8} "
            f"{dag_x:>7} {rows / run['seconds']:>10,.0f} {run['peak_mb']:>8.0f} {dag_mb:>7} "
            f"{'pass' if run['gate'] else 'FAIL':>5} {run['cost_rows']:>10,}"
        )
    print(f"Limits: computation <= {COMPUTATION_LIMIT}x bare, whole DAG <= {DAG_LIMIT}x, peak < {PEAK_LIMIT_MB} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
