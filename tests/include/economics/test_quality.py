"""The data-quality gate on the hand-checked day, and on each kind of bad row."""

from datetime import datetime

import pytest

from include.economics import ledger, margin, quality, rollups
from tests.include.economics.fixture_day import BOOK, DAY, request


def _gate(engine):
    groups, tables = rollups.compute_rollups(engine, BOOK, DAY)
    return quality.run_gate(
        engine,
        BOOK,
        DAY,
        tables.get("ai_cost_daily", groups.iloc[0:0]),
        margin.day_revenue_groups(engine, DAY),
        set(margin.fx_for_day(engine, DAY)),
    )


def _insert(engine, table, rows):
    with engine.begin() as connection:
        connection.execute(table.insert(), rows)


def test_the_clean_day_passes_every_expectation(ledger_db):
    gate = _gate(ledger_db)

    assert gate.passed, gate.table()
    assert gate.warnings == []
    assert len(gate.checks) >= 20
    assert set(gate.validations) == {"ledger", "rollups", "revenue"}


AT = datetime(2026, 11, 5, 9, 30)
BAD_ROWS = {
    "model_name is not null": [request("b-null", 7, "chat", None, 10, 0, 5, AT)],
    "input_tokens >= 0": [{**request("b-neg", 7, "chat", "gpt-4.1", -5, 0, 5, AT), "total_tokens": 0}],
    "cached_input_tokens <= input_tokens": [request("b-cache", 7, "chat", "gpt-4.1", 10, 50, 5, AT)],
    "total_tokens == input_tokens + output_tokens": [
        {**request("b-total", 7, "chat", "gpt-4.1", 10, 0, 5, AT), "total_tokens": 99}
    ],
    "request_id is unique": [request("r2", 7, "chat", "gpt-4.1", 10, 0, 5, AT)],
    "model_name in the price catalogue": [request("b-model", 7, "chat", "mystery-llm-9", 10, 0, 5, AT)],
}


@pytest.mark.parametrize("expectation", sorted(BAD_ROWS))
def test_each_kind_of_bad_row_fails_the_gate_naming_it(ledger_db, expectation):
    _insert(ledger_db, ledger.ai_usage_logs, BAD_ROWS[expectation])

    gate = _gate(ledger_db)

    assert not gate.passed
    failed = {check.name: check for check in gate.critical_failures}
    assert expectation in failed, gate.table()
    bad_id = BAD_ROWS[expectation][0]["request_id"]
    assert bad_id in failed[expectation].examples
    assert f"{expectation} (" in gate.paragraph()
    assert bad_id in gate.paragraph()


def test_overlapping_plans_break_the_rollup_totals(ledger_db):
    # user 2 on two plans at once: every request of theirs would be counted twice
    _insert(
        ledger_db,
        ledger.user_plans,
        [{"user_id": 2, "plan": "team", "valid_from": datetime(2026, 11, 1), "valid_to": None}],
    )

    gate = _gate(ledger_db)

    names = {check.name for check in gate.critical_failures}
    assert "ai_cost_daily requests adds up to the ledger's 6" in names
    assert not gate.passed


def test_a_currency_without_a_rate_fails_the_gate(ledger_db):
    _insert(
        ledger_db,
        ledger.revenue_events,
        [{"user_id": 5, "plan": "basic", "amount": 9, "currency": "GBP", "kind": "charge", "occurred_at": AT}],
    )

    gate = _gate(ledger_db)

    [failure] = gate.critical_failures
    assert (failure.suite, failure.name, failure.examples) == ("revenue", "every currency has an FX rate", ("GBP",))


def test_an_inconsistent_error_type_is_only_a_warning(ledger_db):
    _insert(
        ledger_db,
        ledger.ai_usage_logs,
        [{**request("w1", 7, "chat", "gpt-4.1", 10, 0, 5, AT), "error_type": "rate_limited"}],
    )

    gate = _gate(ledger_db)

    assert gate.passed
    assert [(w.name, w.examples) for w in gate.warnings] == [("success and error_type agree", ("w1",))]
    assert "FAILED  warning" in gate.table()


#: A model name from the price catalogue is data: with a backslash before a quote, a
#: literal escaped only by doubling quotes would end early on MariaDB (backslash escapes).
HOSTILE_MODEL = "evil\\' OR 1=1 OR model_name='x"


def test_a_catalogue_model_name_with_a_backslash_and_quote_stays_data(ledger_db):
    from include.economics.prices import DEFAULT_CATALOGUE, PriceBook

    text = DEFAULT_CATALOGUE.read_text().rstrip("\n") + f'\n"{HOSTILE_MODEL}",2026-01-01,USD,0.001,0.0005,0.002,,,,\n'
    book = PriceBook.from_text(text, "hostile catalogue")
    assert HOSTILE_MODEL in book.rows_for_day(DAY)
    _insert(
        ledger_db,
        ledger.ai_usage_logs,
        [
            request("b-hostile", 7, "chat", HOSTILE_MODEL, 10, 0, 5, AT),
            request("b-model", 7, "chat", "mystery", 1, 0, 1, AT),
        ],
    )
    _, tables = rollups.compute_rollups(ledger_db, book, DAY)

    gate = quality.run_gate(
        ledger_db,
        book,
        DAY,
        tables["ai_cost_daily"],
        margin.day_revenue_groups(ledger_db, DAY),
        set(margin.fx_for_day(ledger_db, DAY)),
    )

    failed = {check.name: check for check in gate.critical_failures}
    assert "model_name in the price catalogue" in failed, gate.table()
    assert "b-model" in failed["model_name in the price catalogue"].examples
    assert "b-hostile" not in failed["model_name in the price catalogue"].examples
