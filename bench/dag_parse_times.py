"""Parse time of each DAG file, as the dag-processor pays it.

Each file is parsed, several times, in a fresh interpreter that has already imported
Airflow and frozen its objects out of the garbage collector, as the dag-processor does
before it forks its parsers: the figure is the file's own cost (its imports and its DAG
construction). Bytecode is cached, as where the dag-processor runs: one parse of each
file first, not counted, compiles the project's modules into a private cache
(``PYTHONPYCACHEPREFIX``; this machine sets ``PYTHONDONTWRITEBYTECODE``, which would
otherwise charge every parse about 40 ms of compiling). The table shows the median and
the worst. Run: ``make bench`` or
``.venv/bin/python bench/dag_parse_times.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

_MEASURE = """
import json, sys, time
from airflow.dag_processing.dagbag import DagBag
import airflow.sdk  # noqa: F401 - warm: every DAG file pays this import anyway
import gc
# as the dag-processor does before it forks its parsers (DagFileProcessorManager.before_run):
# without it a full collection of Airflow's own objects (about 100 ms) lands in whichever
# file's parse happens to allocate past the threshold
gc.freeze()
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - started
print(json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": len(bag.import_errors)}))
"""


def measure(path: Path, env: dict[str, str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], env=env, capture_output=True, text=True, check=True, timeout=300
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(
        PYTHONPYCACHEPREFIX=tempfile.mkdtemp(prefix="bench-pycache-"),
        AIRFLOW_HOME=tempfile.mkdtemp(prefix="bench-airflow-"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
    )
    files = sorted(p for p in (REPO_ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
    print(f"DAG parse time, {args.repeat} fresh interpreters per file (Airflow imported and gc-frozen)")
    print(f"{'file':<40} {'dags':>4} {'median ms':>10} {'max ms':>8}")
    failed = False
    for path in files:
        measure(path, env)  # compiles what the file imports into the bytecode cache
        runs = [measure(path, env) for _ in range(args.repeat)]
        seconds = [run["seconds"] for run in runs]
        failed |= any(run["errors"] for run in runs)
        median_ms, max_ms = statistics.median(seconds) * 1000, max(seconds) * 1000
        print(f"{path.name:<40} {runs[0]['dags']:>4} {median_ms:>10.1f} {max_ms:>8.1f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
