"""A hand-checked day: every expected total below is worked out in the comments."""

from datetime import date, datetime
from decimal import Decimal

from include.economics import ledger, rollups
from include.economics.prices import to_money
from tests.include.economics.fixture_day import BOOK, DAY, EXPECTED, request


def test_the_day_is_grouped_and_priced_exactly(ledger_db):
    groups = rollups.compute_rollups(ledger_db, BOOK, DAY)[0]

    actual = {
        (int(g.user_id), g.feature_name, g.model_name, g.plan): (
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
            [request("old", 1, "chat", "gpt-4.1-mini", 2800, 200, 1500, datetime(2026, 10, 31, 9, 0))],
        )

    [group] = rollups.compute_rollups(ledger_db, BOOK, date(2026, 10, 31))[0].itertuples()

    # the pre-November price 0.0004 / 0.0001 / 0.0016: (2600*0.0004 + 200*0.0001 + 1500*0.0016)/1000
    assert group.cost_usd == Decimal("0.00346")


def test_a_model_missing_from_the_catalogue_has_no_cost(ledger_db):
    with ledger_db.begin() as connection:
        connection.execute(
            ledger.ai_usage_logs.insert(),
            [request("x", 3, "chat", "llama-9-unknown", 10, 0, 10, datetime(2026, 11, 5, 8, 0))],
        )

    groups = rollups.compute_rollups(ledger_db, BOOK, DAY)[0]

    unknown = groups[groups["model_name"] == "llama-9-unknown"]
    assert list(unknown["cost_usd"]) == [None]


def test_an_empty_day_is_an_empty_frame(ledger_db):
    groups = rollups.compute_rollups(ledger_db, BOOK, date(2026, 1, 1))[0]

    assert groups.empty
    assert "cost_usd" in groups.columns


def test_every_rollup_level_has_percentiles_dau_and_peaks(ledger_db):
    _, tables = rollups.compute_rollups(ledger_db, BOOK, DAY)

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
