"""The daily job's scale guard (issue 23): a 200,000-request day on MariaDB computes within
2x the bare ``GROUP BY`` of the same day, in under 1 GiB.

Issue 23's 1.5x holds at 1M and 10M rows (``bench/economics_day.py``: 1.05x and 0.63x). At
200k the ratio is set by the Python side's per-group work against the database's speed,
which differ between machines: 1.3x here, 1.65x once on the CI's machine, whose MariaDB
grouped the day in 2.0 s against 2.7 s here. 2x still fails the regressions the guard is
for: the day pulled whole into pandas, or a pass per request in Python, measured 5.4x.

Measured with the benchmark's own functions, each the best of two runs (a busy machine
slows a run, not the work): a benchmark, not a timed unit test, and it fails with the
figures it measured.
"""

import uuid

import pytest

from bench import economics_day as bench

ROWS, USERS = 200_000, 100_000
RATIO_LIMIT = 2.0  # at this size; see the module's docstring


@pytest.fixture
def big_day():
    database = f"bp_guard_{uuid.uuid4().hex[:8]}"
    bench.generate(database, ROWS, USERS)
    yield database
    bench.drop(database)


@pytest.mark.benchmark
def test_a_200k_request_day_computes_within_its_ratio_and_memory(big_day):
    bare = min(bench.bare_group_by(big_day) for _ in range(2))
    runs = [bench.computation(big_day) for _ in range(2)]
    best = min(run["seconds"] for run in runs)
    peak = max(run["peak_mb"] for run in runs)
    figures = (
        f"{ROWS:,} rows: bare GROUP BY {bare:.2f}s, computation {best:.2f}s ({best / bare:.2f}x, limit "
        f"{RATIO_LIMIT}x), peak RSS {peak:.0f} MB (limit {bench.PEAK_LIMIT_MB} MB)"
    )

    assert all(run["gate"] for run in runs), figures
    assert {run["cost_rows"] for run in runs} == {195_071}, figures  # the generator's groups, every run
    assert best / bare <= RATIO_LIMIT, figures
    assert peak < bench.PEAK_LIMIT_MB, figures
