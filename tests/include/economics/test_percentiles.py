"""The SQL percentiles equal numpy's linear (percentile_cont) ones, on every dialect,
for the per-user level (raw rows) and the coarse levels (duration histograms)."""

import random
from datetime import datetime, timedelta

import numpy as np
import pytest

from include.economics import ledger, rollups
from tests.include.economics.fixture_day import BOOK, DAY, request


def _random_day(engine, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for number in range(rng.randint(1, 400)):
        # many ties (small values) and a long tail: both edges of the rank arithmetic
        duration = rng.choice([rng.randint(1, 30), rng.randint(1, 20_000)])
        feature = rng.choice(["chat", "search", "agents"])
        at = datetime.combine(DAY, datetime.min.time()) + timedelta(seconds=rng.randint(0, 86_399))
        rows.append(request(f"q{number}", rng.randint(1, 3), feature, "gpt-4.1", 10, 0, 5, at, duration=duration))
    ledger.create_ledger_schema(engine)
    with engine.begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), rows)
    return rows


@pytest.mark.parametrize("seed", range(3))
def test_sql_percentiles_equal_percentile_cont_on_the_raw_durations(ledger_engine, seed):
    rows = _random_day(ledger_engine, seed)

    groups, tables = rollups.compute_rollups(ledger_engine, BOOK, DAY)

    def expected(selected):
        durations = [r["request_duration_ms"] for r in selected]
        return (float(np.percentile(durations, 50)), float(np.percentile(durations, 95)))  # ours: to 0.1 ms

    for group in groups.to_dict("records"):
        mine = [r for r in rows if (r["user_id"], r["feature_name"]) == (group["user_id"], group["feature_name"])]
        assert (group["p50_ms"], group["p95_ms"]) == pytest.approx(expected(mine), abs=0.051)
    for feature in tables["ai_feature_daily"].to_dict("records"):
        mine = [r for r in rows if r["feature_name"] == feature["feature_name"]]
        assert (feature["p50_ms"], feature["p95_ms"]) == pytest.approx(expected(mine), abs=0.051)
    [usage] = tables["ai_usage_daily"].to_dict("records")
    assert (usage["p50_ms"], usage["p95_ms"]) == pytest.approx(expected(rows), abs=0.051)
