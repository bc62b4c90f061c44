"""What changed between two versions of the price catalogue, and which days that reprices.

A day is repriced when some model is priced differently on it: the row in effect that
day (the latest ``effective_from`` on or before it) has other rates, another currency or
another long-context tier in the new version, or exists in only one of them. Days are
compared one by one, so a row added with the same prices as the one before it reprices
nothing, and an edited row reprices only until its model's next row. Only past days
count (up to yesterday), at most ``max_days`` back: older days keep their cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from include.economics.prices import PriceBook, PriceRow


@dataclass(frozen=True)
class RowChange:
    kind: str  # "added", "edited" or "removed"
    model_name: str
    effective_from: date

    def describe(self) -> str:
        return f"{self.model_name} from {self.effective_from} {self.kind}"


@dataclass(frozen=True)
class CatalogueChange:
    rows: tuple[RowChange, ...]
    #: the first and last past day priced differently, or None
    repriced: tuple[date, date] | None

    def __bool__(self) -> bool:
        return bool(self.rows)

    def describe(self) -> str:
        rows = "; ".join(row.describe() for row in self.rows) or "no price row changed"
        days = f"{self.repriced[0]} to {self.repriced[1]} repriced" if self.repriced else "no past day repriced"
        return f"{rows} ({days})"

    def as_extra(self) -> dict[str, object]:
        """As JSON values: an asset event's extra."""
        first, last = self.repriced or (None, None)
        return {
            "change": self.describe(),
            "first_day": first and first.isoformat(),
            "last_day": last and last.isoformat(),
        }


def _rows(book: PriceBook) -> dict[tuple[str, date], PriceRow]:
    return {(row.model_name, row.effective_from): row for row in book.rows}


def _prices(row: PriceRow | None) -> tuple | None:
    return None if row is None else (row.currency, row.standard, row.long_context_threshold, row.long)


def repriced_days(old: PriceBook, new: PriceBook, since: date, until: date) -> list[date]:
    """The days in [since, until] on which some model is priced differently."""
    models = old.models | new.models
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    return [
        day
        for day in days
        if any(_prices(old.row_for(model, day)) != _prices(new.row_for(model, day)) for model in models)
    ]


def changes(old: PriceBook, new: PriceBook, yesterday: date, max_days: int) -> CatalogueChange:
    """Every row of ``new`` that ``old`` lacks or prices differently, every row it dropped,
    and the past days (at most ``max_days`` back from ``yesterday``) priced differently."""
    before, after = _rows(old), _rows(new)
    rows = []
    for key in sorted(before.keys() | after.keys()):
        if key not in before:
            rows.append(RowChange("added", *key))
        elif key not in after:
            rows.append(RowChange("removed", *key))
        elif _prices(before[key]) != _prices(after[key]):
            rows.append(RowChange("edited", *key))
    repriced = None
    if rows:
        since = max(min(row.effective_from for row in rows), yesterday - timedelta(days=max_days - 1))
        days = repriced_days(old, new, since, yesterday) if since <= yesterday else []
        repriced = (days[0], days[-1]) if days else None
    return CatalogueChange(tuple(rows), repriced)
