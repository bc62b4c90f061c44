"""Which days a price catalogue change reprices: the past days on which some model is
priced differently, compared day by day, at most the reprice window back."""

from __future__ import annotations

import json
from datetime import date

from include.economics.catalogue_changes import changes
from include.economics.prices import DEFAULT_CATALOGUE, PriceBook

CATALOGUE = DEFAULT_CATALOGUE.read_text()
YESTERDAY = date(2026, 11, 29)
GPT_41_LATER = "gpt-4.1,2026-11-20,USD,0.003,0.001,0.009,,,,"


def _book(text: str) -> PriceBook:
    return PriceBook.from_text(text, "catalogue.csv")


def _with(*lines: str) -> PriceBook:
    return _book(CATALOGUE.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


def test_the_same_catalogue_changes_nothing():
    change = changes(_book(CATALOGUE), _book(CATALOGUE), YESTERDAY, 90)
    assert not change
    assert change.repriced is None


def test_a_back_dated_row_reprices_from_its_date_to_yesterday():
    change = changes(_book(CATALOGUE), _with(GPT_41_LATER), YESTERDAY, 90)
    assert change.describe() == "gpt-4.1 from 2026-11-20 added (2026-11-20 to 2026-11-29 repriced)"
    assert change.repriced == (date(2026, 11, 20), YESTERDAY)


def test_an_edited_row_reprices_only_until_the_models_next_row():
    edited = CATALOGUE.replace(
        "gpt-4.1-mini,2026-01-01,USD,0.0004,0.0001,", "gpt-4.1-mini,2026-01-01,USD,0.0004,0.0002,"
    )
    assert edited != CATALOGUE
    assert changes(_book(CATALOGUE), _book(edited), YESTERDAY, 400).repriced == (date(2026, 1, 1), date(2026, 10, 31))
    # at most 90 days back
    assert changes(_book(CATALOGUE), _book(edited), YESTERDAY, 90).repriced == (date(2026, 9, 1), date(2026, 10, 31))


def test_a_removed_row_reprices_its_days_with_the_row_before_it():
    lines = [line for line in CATALOGUE.splitlines() if not line.startswith("gpt-4.1-mini,2026-11-01")]
    change = changes(_book(CATALOGUE), _book("\n".join(lines) + "\n"), YESTERDAY, 90)
    assert [row.describe() for row in change.rows] == ["gpt-4.1-mini from 2026-11-01 removed"]
    assert change.repriced == (date(2026, 11, 1), YESTERDAY)


def test_a_row_with_the_prices_already_in_effect_reprices_nothing():
    change = changes(_book(CATALOGUE), _with("gpt-4.1,2026-11-20,USD,0.002,0.0005,0.008,,,,"), YESTERDAY, 90)
    assert [row.kind for row in change.rows] == ["added"]
    assert change.repriced is None


def test_a_price_for_a_few_days_reprices_exactly_those_days():
    change = changes(
        _book(CATALOGUE), _with(GPT_41_LATER, "gpt-4.1,2026-11-23,USD,0.002,0.0005,0.008,,,,"), YESTERDAY, 90
    )
    assert change.repriced == (date(2026, 11, 20), date(2026, 11, 22))


def test_a_row_starting_tomorrow_reprices_nothing_yet():
    change = changes(_book(CATALOGUE), _with("gpt-4.1,2026-11-30,USD,0.003,0.001,0.009,,,,"), YESTERDAY, 90)
    assert change
    assert change.repriced is None


def test_a_change_travels_as_json():
    extra = json.loads(json.dumps(changes(_book(CATALOGUE), _with(GPT_41_LATER), YESTERDAY, 90).as_extra()))
    assert extra == {
        "change": "gpt-4.1 from 2026-11-20 added (2026-11-20 to 2026-11-29 repriced)",
        "first_day": "2026-11-20",
        "last_day": "2026-11-29",
    }
