"""Our recomputed cost of a day against the providers' bills, per provider and model.

For each model a bill names: our cost (``ai_model_daily``, exact) against the billed
cost in USD (the day's FX rate for another currency), and each token class on its own:
our token counts against the billed ones, and what the class costs at our catalogue's
rates against what it was billed (each request at its own tier: one GROUP BY of the day
by model and tier). A wrong cached-token price shows as a *cached* cost drift with
matching cached tokens; cached tokens counted as plain input show as token drifts in
both classes. A model the catalogue does not price is *unpriced spend*, never dropped.
The ledger does not say which provider served a model: our usage of a model is all of
it, whichever bill names it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.bills import CLASSES, NOT_A_MODEL, BillError, BillLine
from include.economics.ledger import day_requests_select
from include.economics.prices import PriceBook, to_money
from include.money import usd
from include.tables import format_table

COLUMNS = (
    "day", "provider", "model_name", "status", "our_cost_usd", "billed_cost_usd", "drift_usd", "drift_pct",
    *(f"{who}_{c}_tokens" for c in CLASSES for who in ("our", "billed")), "drifting",
)  # fmt: skip
#: below this many USD a class's cost difference is rounding, whatever its percentage
MIN_DRIFT_USD = Decimal("0.01")
AWAITING = "bill not yet available"


@dataclass(frozen=True)
class Finding:
    provider: str
    model_name: str
    status: str  # "ok", "drift", "unpriced", "other spend" (web search...) or AWAITING
    our_cost: Decimal
    billed_cost: Decimal
    drifting: tuple[str, ...]

    def as_dict(self) -> dict:
        """As JSON values (money as strings, exact)."""
        return self.__dict__ | {
            "our_cost": str(self.our_cost),
            "billed_cost": str(self.billed_cost),
            "drifting": list(self.drifting),
        }

    @property
    def drift_pct(self) -> float | None:
        return None if not self.billed_cost else float((self.our_cost - self.billed_cost) / self.billed_cost * 100)


def _pct(ours: Decimal | int, billed: Decimal | int) -> float:
    return float((Decimal(ours) - Decimal(billed)) / Decimal(billed) * 100) if billed else (0.0 if not ours else 100.0)


def to_usd(amount: Decimal, currency: str, fx: Mapping[str, float], provider: str, day: date) -> Decimal:
    if currency.upper() == "USD":
        return amount
    rate = fx.get(currency.upper())
    if rate is None:
        raise BillError(
            f"{provider}'s bill for {day} is in {currency.upper()} and the ledger has no FX rate for "
            f"{currency.upper()} on or before that day (fx_rates): the day is not reconciled."
        )
    return amount * Decimal(str(rate))


def tier_tokens(engine: Engine, book: PriceBook, day: date) -> list[dict]:
    """The day's token sums per model and price tier (``standard``, ``long``)."""
    r = day_requests_select(book, day).subquery("day_requests").c
    sums = [
        sa.cast(sa.func.sum(r[c]), sa.BigInteger).label(c)
        for c in ("input_tokens", "cached_input_tokens", "output_tokens")
    ]
    with engine.connect() as connection:
        query = sa.select(r.model_name, r.tier, *sums).group_by(r.model_name, r.tier)
        return [dict(row._mapping) for row in connection.execute(query)]


def class_costs(tiers: Iterable[Mapping], book: PriceBook, day: date) -> dict[str, dict[str, Decimal]]:
    """model -> what each token class costs at the catalogue's rates (unpriced models left out)."""
    costs: dict[str, dict[str, Decimal]] = {}
    for row in tiers:
        price = book.row_for(row["model_name"], day)
        if price is None:
            continue
        rates = price.long if row["tier"] == "long" and price.long else price.standard
        cached = int(row["cached_input_tokens"] or 0)
        tokens = {
            "input": int(row["input_tokens"] or 0) - cached,
            "cached": cached,
            "output": int(row["output_tokens"] or 0),
        }
        per_1k = {"input": rates.input_per_1k, "cached": rates.cached_input_per_1k, "output": rates.output_per_1k}
        model = costs.setdefault(row["model_name"], dict.fromkeys(CLASSES, Decimal(0)))
        for c in CLASSES:
            model[c] += Decimal(tokens[c]) * per_1k[c] / 1000
    return costs


def reconcile(
    day: date,
    lines: Iterable[BillLine],
    ours: pd.DataFrame,
    our_costs: Mapping[str, Mapping[str, Decimal]],
    book: PriceBook,
    fx: Mapping[str, float],
    threshold_pct: float,
    awaiting: Iterable[str] = (),
) -> tuple[pd.DataFrame, list[Finding]]:
    """The ``ai_billing_reconciliation`` rows of ``day`` and what each says. ``ours`` is
    the day's ``ai_model_daily``, ``our_costs`` its :func:`class_costs`; ``awaiting``
    names the providers whose bill for the day is not out yet (a row each, no drift)."""
    by_model = {row["model_name"]: row for row in ours.to_dict("records")}
    billed: dict[tuple[str, str], dict] = {}
    for line in lines:
        entry = billed.setdefault((line.provider, line.model_name), {"tokens": dict.fromkeys(CLASSES, 0), "cost": {}})
        for c in CLASSES:
            entry["tokens"][c] += line.tokens[c]
        for c, amount in line.cost.items():
            usd = to_usd(amount, line.currency, fx, line.provider, day)
            entry["cost"][c] = entry["cost"].get(c, Decimal(0)) + usd
    rows, findings = [], []
    for (provider, model), entry in sorted(billed.items()):
        row, finding = _model_row(
            day, provider, model, entry, by_model.get(model), our_costs.get(model), book, threshold_pct
        )
        rows.append(row)
        findings.append(finding)
    for provider in sorted(awaiting):
        rows.append(
            {"day": day, "provider": provider, "model_name": "", "status": AWAITING} | dict.fromkeys(COLUMNS[4:])
        )
        findings.append(Finding(provider, "", AWAITING, Decimal(0), Decimal(0), ()))
    return pd.DataFrame(rows, columns=list(COLUMNS)), findings


def _model_row(
    day, provider, model, entry, our_row, our_costs, book: PriceBook, threshold_pct: float
) -> tuple[dict, Finding]:
    billed_cost = to_money(sum(entry["cost"].values(), Decimal(0)))
    price = book.row_for(model, day)
    tokens, our_cost = dict.fromkeys(CLASSES, 0), Decimal(0)
    if our_row is not None:  # the ledger's input_tokens include the cached ones
        cached = int(our_row["cached_input_tokens"])
        tokens = {
            "input": int(our_row["input_tokens"]) - cached,
            "cached": cached,
            "output": int(our_row["output_tokens"]),
        }
        our_cost = to_money(Decimal(str(our_row["cost_usd"])))
    drifting: list[str] = []
    if model == NOT_A_MODEL:
        status = "other spend"
    elif price is None:
        status = "unpriced"
    else:
        for c in CLASSES:
            ours_tokens, billed_tokens = tokens[c], entry["tokens"][c]
            if abs(_pct(ours_tokens, billed_tokens)) > threshold_pct:
                drifting.append(
                    f"{c} tokens {ours_tokens:,} vs {billed_tokens:,} billed ({_pct(ours_tokens, billed_tokens):+.1f}%)"
                )
            ours_cost, billed_class = (our_costs or {}).get(c, Decimal(0)), entry["cost"].get(c, Decimal(0))
            if abs(ours_cost - billed_class) >= MIN_DRIFT_USD and abs(_pct(ours_cost, billed_class)) > threshold_pct:
                change = _pct(ours_cost, billed_class)
                drifting.append(
                    f"{c} cost {to_money(ours_cost)} vs {to_money(billed_class)} USD billed ({change:+.1f}%)"
                )
        total_drifts = abs(our_cost - billed_cost) >= MIN_DRIFT_USD and abs(_pct(our_cost, billed_cost)) > threshold_pct
        status = "drift" if drifting or total_drifts else "ok"
    finding = Finding(provider, model, status, our_cost, billed_cost, tuple(drifting))
    row = {
        "day": day, "provider": provider, "model_name": model, "status": status,
        "our_cost_usd": our_cost, "billed_cost_usd": billed_cost, "drift_usd": our_cost - billed_cost,
        "drift_pct": None if finding.drift_pct is None else round(finding.drift_pct, 2),
        **{f"our_{c}_tokens": tokens[c] for c in CLASSES},
        **{f"billed_{c}_tokens": entry["tokens"][c] for c in CLASSES},
        "drifting": "; ".join(drifting) or None,
    }  # fmt: skip
    return row, finding


def not_billed(table: pd.DataFrame, ours: pd.DataFrame) -> str | None:
    """The models of our cost that no imported bill names (their provider's bill is not
    imported): said beside the table rather than left out of it silently."""
    billed = set(table["model_name"])
    missing = sorted(
        (row["model_name"], to_money(Decimal(str(row["cost_usd"]))))
        for row in ours.to_dict("records")
        if row["model_name"] not in billed
    )
    if not missing:
        return None
    named = ", ".join(f"{model} ({usd(cost)} of our cost)" for model, cost in missing)
    return f"Not in any imported bill: {named}; no bill import reads their provider, so nothing checks them"


def readable(table: pd.DataFrame) -> str:
    """The reconciliation as people read it: one line per provider and model."""
    headers = ("provider", "model", "status", "our USD", "billed USD", "drift %", "what drifts")
    rows = [
        (r["provider"], r["model_name"] or "-", r["status"], r["our_cost_usd"], r["billed_cost_usd"],
         "" if pd.isna(r["drift_pct"]) else f"{r['drift_pct']:+.2f}", r["drifting"] or "")
        for r in table.to_dict("records")
    ]  # fmt: skip
    return format_table(headers, rows)
