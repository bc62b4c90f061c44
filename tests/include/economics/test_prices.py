from datetime import date
from decimal import Decimal

import pytest

from include.economics.prices import DEFAULT_CATALOGUE, CatalogueError, PriceBook, Rates, to_money

HEADER = (
    "model_name,effective_from,currency,input_per_1k,cached_input_per_1k,output_per_1k,"
    "long_context_threshold,long_input_per_1k,long_cached_input_per_1k,long_output_per_1k\n"
)


def test_cost_follows_the_formula_exactly():
    rates = Rates(Decimal("0.003"), Decimal("0.0003"), Decimal("0.015"))

    # (1200 - 200)/1000*0.003 + 200/1000*0.0003 + 500/1000*0.015 = 0.003 + 0.00006 + 0.0075
    assert rates.cost(1200, 200, 500) == Decimal("0.01056")


def test_group_cost_from_sums_equals_the_sum_of_request_costs():
    rates = Rates(Decimal("0.0004"), Decimal("0.0001"), Decimal("0.0016"))
    requests = [(1000, 0, 10), (333, 111, 7), (2048, 2048, 999), (1, 0, 1)]

    one_by_one = sum(rates.cost(*r) for r in requests)
    from_sums = rates.cost(*(sum(column) for column in zip(*requests, strict=True)))

    assert one_by_one == from_sums
    # sums: input 3382, cached 2159, output 1017 -> (1223*0.0004 + 2159*0.0001 + 1017*0.0016)/1000
    assert from_sums == Decimal("0.0023323")
    assert to_money(from_sums) == Decimal("0.002332")


def test_the_shipped_catalogue_prices_by_day_and_tier():
    book = PriceBook.from_csv(DEFAULT_CATALOGUE)

    before = book.row_for("gpt-4.1-mini", date(2026, 10, 31))
    after = book.row_for("gpt-4.1-mini", date(2026, 11, 1))
    assert before.standard.input_per_1k == Decimal("0.0004")
    assert after.standard.input_per_1k == Decimal("0.00032")
    sonnet = book.row_for("claude-sonnet-4", date(2026, 11, 1))
    assert sonnet.tier(200_000) == "standard"
    assert sonnet.tier(200_001) == "long"
    # above the threshold *all* tokens take the long rates
    assert sonnet.rates(250_000).cost(250_000, 50_000, 1_000) == Decimal("1.2525")
    assert book.row_for("gpt-4.1", date(2025, 12, 31)) is None
    assert set(book.rows_for_day(date(2026, 11, 1))) == book.models


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("m,2026-13-01,USD,1,1,1,,,,", "effective_from '2026-13-01' is not a YYYY-MM-DD date"),
        ("m,2026-01-01,EUR,1,1,1,,,,", "prices must be in USD, not 'EUR'"),
        ("m,2026-01-01,USD,-1,1,1,,,,", "input_per_1k must be a non-negative number"),
        ("m,2026-01-01,USD,one,1,1,,,,", "input_per_1k 'one' is not a number"),
        ("m,2026-01-01,USD,1,1,1,1000,2,,", "give all of long_context_threshold"),
        (",2026-01-01,USD,1,1,1,,,,", "model_name is empty"),
    ],
)
def test_a_malformed_row_names_file_line_and_column(tmp_path, row, message):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + row + "\n")

    with pytest.raises(CatalogueError, match=f"{path}:2: "):
        PriceBook.from_csv(path)
    with pytest.raises(CatalogueError, match=message.replace("(", "\\(")):
        PriceBook.from_csv(path)


def test_duplicate_rows_and_missing_columns_are_refused(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "m,2026-01-01,USD,1,1,1,,,,\nm,2026-01-01,USD,2,2,2,,,,\n")
    with pytest.raises(CatalogueError, match="two rows for m effective 2026-01-01"):
        PriceBook.from_csv(path)

    path.write_text("model_name,effective_from\nm,2026-01-01\n")
    with pytest.raises(CatalogueError, match="missing column\\(s\\) currency, input_per_1k"):
        PriceBook.from_csv(path)
