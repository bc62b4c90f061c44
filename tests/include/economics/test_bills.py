"""The providers' bills, read from their documented responses (recorded in
tests/include/economics/recorded/), and reconciled with our cost: a bill that matches passes, a
wrong cached-token price is a cached-cost drift of that model alone, an unpriced model
is unpriced spend, another currency is converted or named."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from include.economics import bills
from include.economics.bill_reconciliation import AWAITING, class_costs, not_billed, reconcile
from include.economics.prices import DEFAULT_CATALOGUE, PriceBook

RECORDED = Path(__file__).parent / "recorded"
DAY = date(2026, 11, 29)
BOOK = PriceBook.from_csv(DEFAULT_CATALOGUE)


def _recorded(name: str) -> list[dict]:
    return [json.loads((RECORDED / f"{name}.json").read_text())]


def _openai():
    return bills.openai_lines(_recorded("openai_usage_completions"), _recorded("openai_costs"))


def _anthropic():
    return bills.anthropic_lines(_recorded("anthropic_usage_messages"), _recorded("anthropic_cost_report"))


def _ours(*rows) -> pd.DataFrame:
    """ai_model_daily rows: model, input (cached included), cached, output, cost."""
    columns = ["model_name", "input_tokens", "cached_input_tokens", "output_tokens", "cost_usd"]
    return pd.DataFrame([dict(zip(columns, row, strict=True)) for row in rows])


OURS = _ours(
    ("gpt-4.1", 1_200_000, 400_000, 300_000, Decimal("4.2")),
    ("gpt-4.1-mini", 500_000, 0, 100_000, Decimal("0.288")),
    ("claude-sonnet-4", 900_000, 200_000, 150_000, Decimal("4.41")),
)


def _costs(book: PriceBook = BOOK, ours: pd.DataFrame = OURS) -> dict:
    """Each model's class costs, every request at the standard tier."""
    tiers = [row | {"tier": "standard"} for row in ours.to_dict("records")]
    return class_costs(tiers, book, DAY)


def test_openai_usage_and_costs_make_one_line_per_model_and_project():
    [gpt, mini] = _openai()
    assert (gpt.model_name, gpt.account, gpt.currency) == ("gpt-4.1", "proj_app", "USD")
    assert gpt.tokens == {"input": 800_000, "cached": 400_000, "output": 300_000}
    assert gpt.cost == {"input": Decimal("1.6"), "cached": Decimal("0.2"), "output": Decimal("2.4"), "other": 0}
    assert mini.total_cost == Decimal("0.288")


def test_anthropic_costs_are_in_cents_and_web_search_is_no_model():
    lines = {line.model_name: line for line in _anthropic()}
    sonnet = lines["claude-sonnet-4"]
    assert sonnet.tokens == {"input": 700_000, "cached": 200_000, "output": 150_000}
    assert sonnet.cost["input"] == Decimal("2.1")
    assert sonnet.cost["cached"] == Decimal("0.06")
    assert lines[bills.NOT_A_MODEL].cost["other"] == Decimal("1")


def test_bedrock_usage_types_map_to_the_catalogues_models():
    usage = [
        ("input-tokens", "0.3", "100000"),
        ("cache-read-input-token-count", "0.003", "10000"),
        ("output-tokens", "0.75", "50000"),
    ]
    groups = [
        {
            "Keys": [f"USE1-Claude4Sonnet-{what}"],
            "Metrics": {"UnblendedCost": {"Amount": cost, "Unit": "USD"}, "UsageQuantity": {"Amount": tokens}},
        }
        for what, cost, tokens in usage
    ]
    [line] = bills.bedrock_lines(groups, {"Claude4Sonnet": "claude-sonnet-4"})
    assert line.model_name == "claude-sonnet-4"
    assert line.tokens == {"input": 100_000, "cached": 10_000, "output": 50_000}
    assert line.total_cost == Decimal("1.053")


def test_a_csv_bill_needs_every_column():
    header = ",".join(bills.CSV_COLUMNS)
    [line] = bills.csv_lines(f"{header}\nmistral-large,acct,1000,0,500,0.002,0,0.003,0,EUR\n", "mistral")
    assert (line.provider, line.currency, line.total_cost) == ("mistral", "EUR", Decimal("0.005"))
    with pytest.raises(bills.BillError, match="lacks column"):
        bills.csv_lines("model_name,cost\nx,1\n", "mistral")


def test_bills_that_match_our_cost_pass():
    table, findings = reconcile(DAY, [*_openai(), *_anthropic()], OURS, _costs(), BOOK, {}, threshold_pct=2)
    statuses = {(f.provider, f.model_name): f.status for f in findings}
    assert statuses == {
        ("anthropic", "(not a model)"): "other spend",
        ("anthropic", "claude-sonnet-4"): "ok",
        ("openai", "gpt-4.1"): "ok",
        ("openai", "gpt-4.1-mini"): "ok",
    }
    row = table.set_index("model_name").loc["gpt-4.1"]
    assert (row["our_cached_tokens"], row["billed_cached_tokens"]) == (400_000, 400_000)
    assert row["drift_usd"] == 0


def test_the_models_no_imported_bill_names_are_said_not_left_out():
    table, _ = reconcile(DAY, _openai(), OURS, _costs(), BOOK, {}, threshold_pct=2)
    said = not_billed(table, OURS)
    assert said.startswith("Not in any imported bill: claude-sonnet-4 ($")
    assert said.endswith("no bill import reads their provider, so nothing checks them")
    everything, _ = reconcile(DAY, [*_openai(), *_anthropic()], OURS, _costs(), BOOK, {}, threshold_pct=2)
    assert not_billed(everything, OURS) is None


def test_a_wrong_cached_price_is_a_cached_cost_drift_of_that_model_alone():
    # the catalogue charges gpt-4.1's cached tokens at the full input price (cached ignored)
    wrong = PriceBook.from_text(
        DEFAULT_CATALOGUE.read_text().replace(
            "gpt-4.1,2026-01-01,USD,0.002,0.0005,", "gpt-4.1,2026-01-01,USD,0.002,0.002,"
        ),
        "wrong.csv",
    )
    ours = OURS.copy()
    ours.loc[ours["model_name"] == "gpt-4.1", "cost_usd"] = Decimal("4.8")  # 1.6 + 0.8 + 2.4
    _, findings = reconcile(DAY, _openai(), ours, _costs(wrong), wrong, {}, threshold_pct=2)
    [gpt] = [f for f in findings if f.model_name == "gpt-4.1"]
    assert gpt.status == "drift"
    assert gpt.drifting == ("cached cost 0.800000 vs 0.200000 USD billed (+300.0%)",)
    assert [f.status for f in findings if f.model_name != "gpt-4.1"] == ["ok"]


def test_a_model_we_do_not_price_is_unpriced_spend():
    line = bills.BillLine("openai", "o9-preview", "proj", "USD")
    line.cost["input"] = Decimal("12.5")
    table, [finding] = reconcile(DAY, [line], OURS, _costs(), BOOK, {}, threshold_pct=2)
    assert (finding.status, finding.billed_cost) == ("unpriced", Decimal("12.500000"))
    assert table.iloc[0]["billed_cost_usd"] == Decimal("12.500000")


def test_another_currency_is_converted_with_the_days_rate_or_named():
    line = bills.BillLine("mistral", "gpt-4.1-mini", "", "EUR")
    line.tokens.update(input=500_000, output=100_000)
    line.cost.update(input=Decimal("0.16") / Decimal("1.08"), output=Decimal("0.128") / Decimal("1.08"))
    _, [finding] = reconcile(DAY, [line], OURS, _costs(), BOOK, {"EUR": 1.08}, threshold_pct=2)
    assert finding.status == "ok"
    with pytest.raises(bills.BillError, match="is in EUR and the ledger has no FX rate for EUR"):
        reconcile(DAY, [line], OURS, _costs(), BOOK, {}, threshold_pct=2)


def test_a_bill_not_out_yet_is_no_drift():
    table, [finding] = reconcile(DAY, [], OURS, _costs(), BOOK, {}, threshold_pct=2, awaiting=["anthropic"])
    assert finding.status == AWAITING
    assert table.iloc[0]["status"] == AWAITING


def test_the_weekly_review_says_each_providers_week_in_one_line():
    from types import SimpleNamespace

    from include.economics.review import _bills

    days = [reconcile(DAY, [*_openai(), *_anthropic()], OURS, _costs(), BOOK, {}, threshold_pct=2)[0]]
    days.append(reconcile(date(2026, 11, 30), [], OURS, _costs(), BOOK, {}, threshold_pct=2, awaiting=["openai"])[0])
    [anthropic, openai] = _bills(SimpleNamespace(frames={"ai_billing_reconciliation": pd.concat(days)}))
    assert (
        openai.sentence()
        == "openai: billed 4.488000 USD, our cost 4.488000 USD (+0.0%); no drift; 1 day(s) not billed yet"
    )
    assert anthropic.sentence().startswith("anthropic: billed 4.410000 USD, our cost 4.410000 USD")
