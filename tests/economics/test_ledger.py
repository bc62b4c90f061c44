"""A hand-checked day: every expected total below is worked out in the comments."""

from datetime import date, datetime
from decimal import Decimal

import pytest

from include.economics import ledger
from include.economics.prices import DEFAULT_CATALOGUE, PriceBook, to_money

DAY = date(2026, 11, 5)
BOOK = PriceBook.from_csv(DEFAULT_CATALOGUE)


def _request(request_id, user, feature, model, inp, cached, out, at, *, success=True, cost="0.01", duration=800):
    return {
        "request_id": request_id,
        "user_id": user,
        "feature_name": feature,
        "model_name": model,
        "input_tokens": inp,
        "cached_input_tokens": cached,
        "output_tokens": out,
        "reasoning_tokens": None,
        "total_tokens": inp + out,
        "estimated_cost": Decimal(cost),
        "request_duration_ms": duration,
        "success": success,
        "error_type": None if success else "timeout",
        "release": "2026.11.2",
        "created_at": at,
    }


REQUESTS = [
    # user 1 is on "free" until 12:00, then "pro"
    _request(
        "r1", 1, "chat", "gpt-4.1-mini", 1000, 200, 500, datetime(2026, 11, 5, 0, 0, 0), duration=100
    ),  # first instant
    _request("r2", 1, "chat", "gpt-4.1-mini", 2000, 0, 1000, datetime(2026, 11, 5, 11, 59, 59), duration=300),
    _request(
        "r3", 1, "chat", "gpt-4.1-mini", 500, 500, 100, datetime(2026, 11, 5, 12, 0), success=False, duration=1000
    ),
    # user 2 is "pro"; r4 is above claude-sonnet-4's 200k long-context threshold
    _request(
        "r4", 2, "video-effects", "claude-sonnet-4", 250_000, 50_000, 1000, datetime(2026, 11, 5, 10, 0), duration=4000
    ),
    _request(
        "r5", 2, "video-effects", "claude-sonnet-4", 100_000, 0, 2000, datetime(2026, 11, 5, 10, 5), duration=2000
    ),
    # user 3 has no plan
    _request("r6", 3, "search", "text-embedding-3-small", 3000, 0, 0, datetime(2026, 11, 5, 23, 59, 59), duration=50),
    # outside the day: 24:00 belongs to the next day, 23:59:59 the day before to the previous one
    _request("r7", 3, "search", "gpt-4.1", 100, 0, 50, datetime(2026, 11, 6, 0, 0, 0)),
    _request("r8", 2, "chat", "gpt-4.1", 100, 0, 50, datetime(2026, 11, 4, 23, 59, 59)),
]
PLANS = [
    {"user_id": 1, "plan": "free", "valid_from": datetime(2026, 10, 1), "valid_to": datetime(2026, 11, 5, 12, 0)},
    {"user_id": 1, "plan": "pro", "valid_from": datetime(2026, 11, 5, 12, 0), "valid_to": None},
    {"user_id": 2, "plan": "pro", "valid_from": datetime(2026, 10, 1), "valid_to": None},
]

# (user, feature, model, plan, tier): requests, failures, input, cached, output, total, cost
EXPECTED = {
    # gpt-4.1-mini from 2026-11-01: 0.00032 / 0.00008 / 0.00128 per 1k
    # r1+r2: (2800*0.00032 + 200*0.00008 + 1500*0.00128)/1000 = (0.896 + 0.016 + 1.92)/1000
    (1, "chat", "gpt-4.1-mini", "free", "standard"): (2, 0, 3000, 200, 1500, 4500, "0.002832"),
    # r3: (0*0.00032 + 500*0.00008 + 100*0.00128)/1000 = (0.04 + 0.128)/1000
    (1, "chat", "gpt-4.1-mini", "pro", "standard"): (1, 1, 500, 500, 100, 600, "0.000168"),
    # r4 long rates 0.006 / 0.0006 / 0.0225: (200000*0.006 + 50000*0.0006 + 1000*0.0225)/1000
    (2, "video-effects", "claude-sonnet-4", "pro", "long"): (1, 0, 250_000, 50_000, 1000, 251_000, "1.252500"),
    # r5 standard 0.003 / 0.0003 / 0.015: (100000*0.003 + 2000*0.015)/1000 = 330/1000
    (2, "video-effects", "claude-sonnet-4", "pro", "standard"): (1, 0, 100_000, 0, 2000, 102_000, "0.330000"),
    # r6: 3000*0.00002/1000
    (3, "search", "text-embedding-3-small", "none", "standard"): (1, 0, 3000, 0, 0, 3000, "0.000060"),
}


@pytest.fixture
def ledger_db(ledger_engine):
    ledger.create_ledger_schema(ledger_engine)
    with ledger_engine.begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), REQUESTS)
        connection.execute(ledger.user_plans.insert(), PLANS)
    return ledger_engine


def test_the_day_is_grouped_and_priced_exactly(ledger_db):
    groups = ledger.day_groups(ledger_db, BOOK, DAY)

    actual = {
        (int(g.user_id), g.feature_name, g.model_name, g.plan, g.tier): (
            g.requests,
            g.failures,
            g.input_tokens,
            g.cached_input_tokens,
            g.output_tokens,
            g.total_tokens,
            str(to_money(g.cost_usd)),
        )
        for g in groups.itertuples()
    }
    assert actual == EXPECTED
    # 0.002832 + 0.000168 + 1.2525 + 0.33 + 0.00006
    assert sum(groups["cost_usd"]) == Decimal("1.58556")


def test_a_day_is_priced_by_the_rows_in_effect_that_day(ledger_db):
    with ledger_db.begin() as connection:
        connection.execute(
            ledger.ai_usage_logs.insert(),
            [_request("old", 1, "chat", "gpt-4.1-mini", 2800, 200, 1500, datetime(2026, 10, 31, 9, 0))],
        )

    [group] = ledger.day_groups(ledger_db, BOOK, date(2026, 10, 31)).itertuples()

    # the pre-November price 0.0004 / 0.0001 / 0.0016: (2600*0.0004 + 200*0.0001 + 1500*0.0016)/1000
    assert group.cost_usd == Decimal("0.00346")


def test_a_model_missing_from_the_catalogue_has_no_cost(ledger_db):
    with ledger_db.begin() as connection:
        connection.execute(
            ledger.ai_usage_logs.insert(),
            [_request("x", 3, "chat", "llama-9-unknown", 10, 0, 10, datetime(2026, 11, 5, 8, 0))],
        )

    groups = ledger.day_groups(ledger_db, BOOK, DAY)

    unknown = groups[groups["model_name"] == "llama-9-unknown"]
    assert list(unknown["cost_usd"]) == [None]


def test_an_empty_day_is_an_empty_frame(ledger_db):
    groups = ledger.day_groups(ledger_db, BOOK, date(2026, 1, 1))

    assert groups.empty
    assert "cost_usd" in groups.columns


def test_every_rollup_level_has_percentiles_dau_and_peaks(ledger_db):
    from include.economics import rollups

    tables = rollups.compute_rollups(ledger_db, BOOK, DAY, ledger.day_groups(ledger_db, BOOK, DAY))

    def rows(table, keys, columns):
        frame = tables[table]
        return {tuple(r[k] for k in keys): tuple(r[c] for c in columns) for r in frame.to_dict("records")}

    # percentile_cont: r1,r2 = 100,300 -> p50 200, p95 100 + 0.95*200 = 290; r4,r5 = 2000,4000 -> 3000, 3900
    assert rows("ai_cost_daily", ["user_id", "plan", "model_name"], ["p50_ms", "p95_ms", "requests", "cost_usd"]) == {
        (1, "free", "gpt-4.1-mini"): (200.0, 290.0, 2, Decimal("0.002832")),
        (1, "pro", "gpt-4.1-mini"): (1000.0, 1000.0, 1, Decimal("0.000168")),
        (2, "pro", "claude-sonnet-4"): (3000.0, 3900.0, 2, Decimal("1.5825")),
        (3, "none", "text-embedding-3-small"): (50.0, 50.0, 1, Decimal("0.00006")),
    }
    # chat = 100,300,1000: p50 300, p95 at position 1.9 -> 300 + 0.9*700 = 930; peaks per minute: chat 3000 (r2)
    assert rows(
        "ai_feature_daily", ["feature_name"], ["p50_ms", "p95_ms", "dau", "failure_rate", "peak_tokens_per_minute"]
    ) == {
        ("chat",): (300.0, 930.0, 1, round(1 / 3, 6), 3000),
        ("video-effects",): (3000.0, 3900.0, 1, 0.0, 251_000),
        ("search",): (50.0, 50.0, 1, 0.0, 3000),
    }
    # users per plan: free {1}, pro {1, 2}, none {3}
    assert rows("ai_plan_daily", ["plan"], ["dau", "requests"]) == {
        ("free",): (1, 2),
        ("pro",): (2, 3),
        ("none",): (1, 1),
    }
    # the whole day: 50,100,300,1000,2000,4000 -> p50 650, p95 at 4.75 -> 2000 + 0.75*2000 = 3500
    [usage] = tables["ai_usage_daily"].to_dict("records")
    assert (usage["p50_ms"], usage["p95_ms"], usage["dau"], usage["peak_tokens_per_minute"]) == (
        650.0,
        3500.0,
        3,
        251_000,
    )
    assert (usage["requests"], usage["failures"], usage["cost_usd"]) == (6, 1, Decimal("1.58556"))
    assert set(tables["ai_model_daily"]["model_name"]) == {"gpt-4.1-mini", "claude-sonnet-4", "text-embedding-3-small"}
