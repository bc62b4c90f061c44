"""The AI price catalogue and the per-request cost formula, in exact decimal money.

Catalogue: a CSV with ``model_name, effective_from, currency, input_per_1k,
cached_input_per_1k, output_per_1k, long_context_threshold, long_input_per_1k,
long_cached_input_per_1k, long_output_per_1k`` (the last four empty for a model without
a long-context tier). A request is priced by the row in effect on its ``created_at``
date; when its ``input_tokens`` is above the threshold, *all* its tokens take the long
rates.

Cost of one request (seed 000, with cached input priced separately)::

    (input - cached) / 1000 * input_price
    + cached / 1000 * cached_price
    + output / 1000 * output_price

The formula is linear in the token counts, so the cost of a group of requests that
share a model, a price row and a tier is the same formula applied to the group's token
sums. That is what lets the daily job push the sums down to SQL and never load every
request: :meth:`Rates.cost` takes sums as well as single requests.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cached_property
from pathlib import Path

COLUMNS = (
    "model_name",
    "effective_from",
    "currency",
    "input_per_1k",
    "cached_input_per_1k",
    "output_per_1k",
    "long_context_threshold",
    "long_input_per_1k",
    "long_cached_input_per_1k",
    "long_output_per_1k",
)
LONG_COLUMNS = COLUMNS[6:]
#: Money is kept to the micro-dollar (DECIMAL(18,6) in the warehouse).
MICRO = Decimal("0.000001")

DEFAULT_CATALOGUE = Path(__file__).with_name("price_catalogue.csv")


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the file, line and column."""


@dataclass(frozen=True)
class Rates:
    """Prices per 1,000 tokens for one tier of one catalogue row."""

    input_per_1k: Decimal
    cached_input_per_1k: Decimal
    output_per_1k: Decimal

    @cached_property
    def exponent(self) -> int:
        """Costs at these rates are whole multiples of ``10**-exponent`` USD: the
        per-1k prices times 1000 tokens have no more decimal places than that."""
        places = max(-price.as_tuple().exponent for price in self._prices)
        return max(places, 0) + 3

    @property
    def _prices(self) -> tuple[Decimal, Decimal, Decimal]:
        return self.input_per_1k, self.cached_input_per_1k, self.output_per_1k

    def units(self, input_tokens, cached_input_tokens, output_tokens):
        """The formula in integer units of ``10**-exponent`` USD, exact.

        Takes ints, or numpy object arrays of Python ints (no overflow) to price
        every group of a day in one vectorized step.
        """
        scale = 10 ** (self.exponent - 3)
        per_token = [int(price * scale) for price in self._prices]
        return (
            (input_tokens - cached_input_tokens) * per_token[0]
            + cached_input_tokens * per_token[1]
            + output_tokens * per_token[2]
        )

    def to_usd(self, units: int) -> Decimal:
        return Decimal(int(units)).scaleb(-self.exponent)

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> Decimal:
        """Exact cost of one request, or of a group of requests given their token sums."""
        return self.to_usd(self.units(int(input_tokens), int(cached_input_tokens), int(output_tokens)))


@dataclass(frozen=True)
class PriceRow:
    model_name: str
    effective_from: date
    currency: str
    standard: Rates
    long_context_threshold: int | None = None
    long: Rates | None = None

    def rates(self, input_tokens: int) -> Rates:
        """The tier a request with ``input_tokens`` is priced at."""
        if (
            self.long is not None
            and self.long_context_threshold is not None
            and input_tokens > self.long_context_threshold
        ):
            return self.long
        return self.standard

    def tier(self, input_tokens: int) -> str:
        return "long" if self.rates(input_tokens) is self.long else "standard"


class PriceBook:
    """Every catalogue row, looked up by model and day."""

    def __init__(self, rows: list[PriceRow]) -> None:
        by_model: dict[str, list[PriceRow]] = defaultdict(list)
        for row in rows:
            by_model[row.model_name].append(row)
        self._by_model = {
            model: sorted(versions, key=lambda r: r.effective_from) for model, versions in by_model.items()
        }

    @property
    def models(self) -> frozenset[str]:
        return frozenset(self._by_model)

    @property
    def rows(self) -> list[PriceRow]:
        """Every row, by model and then date."""
        return [row for model in sorted(self._by_model) for row in self._by_model[model]]

    def row_for(self, model_name: str, day: date) -> PriceRow | None:
        """The row in effect on ``day`` (the latest whose effective_from <= day), or None."""
        current = None
        for row in self._by_model.get(model_name, []):
            if row.effective_from <= day:
                current = row
        return current

    def rows_for_day(self, day: date) -> dict[str, PriceRow]:
        """model -> row in effect on ``day``, for every model priced that day."""
        found = {model: self.row_for(model, day) for model in self._by_model}
        return {model: row for model, row in found.items() if row is not None}

    @classmethod
    def from_csv(cls, path: Path | str = DEFAULT_CATALOGUE) -> PriceBook:
        return cls.from_text(Path(path).read_text(), str(path))

    @classmethod
    def from_text(cls, text: str, path: str) -> PriceBook:
        """The catalogue from its CSV text; ``path`` names it in errors (a file or a URI)."""
        reader = csv.DictReader(io.StringIO(text, newline=""))
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CatalogueError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = [_parse_row(path, number, record) for number, record in enumerate(reader, start=2)]
        seen: set[tuple[str, date]] = set()
        for row in rows:
            key = (row.model_name, row.effective_from)
            if key in seen:
                raise CatalogueError(f"{path}: two rows for {row.model_name} effective {row.effective_from}")
            seen.add(key)
        return cls(rows)


def _decimal(path: str, line: int, column: str, text: str) -> Decimal:
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise CatalogueError(f"{path}:{line}: {column} {text!r} is not a number") from None
    if value < 0 or not value.is_finite():
        raise CatalogueError(f"{path}:{line}: {column} must be a non-negative number, not {text!r}")
    return value


def _parse_row(path: str, line: int, record: dict[str, str]) -> PriceRow:
    model = (record["model_name"] or "").strip()
    if not model:
        raise CatalogueError(f"{path}:{line}: model_name is empty")
    try:
        effective_from = date.fromisoformat(record["effective_from"].strip())
    except ValueError:
        raise CatalogueError(
            f"{path}:{line}: effective_from {record['effective_from']!r} is not a YYYY-MM-DD date"
        ) from None
    currency = record["currency"].strip().upper()
    if currency != "USD":
        raise CatalogueError(f"{path}:{line}: prices must be in USD, not {currency!r}")
    standard = Rates(
        *(_decimal(path, line, c, record[c]) for c in ("input_per_1k", "cached_input_per_1k", "output_per_1k"))
    )
    long_values = [(record.get(c) or "").strip() for c in LONG_COLUMNS]
    if not any(long_values):
        return PriceRow(model, effective_from, currency, standard)
    if not all(long_values):
        raise CatalogueError(f"{path}:{line}: give all of {', '.join(LONG_COLUMNS)} or none of them")
    threshold = _decimal(path, line, "long_context_threshold", long_values[0])
    if threshold != threshold.to_integral_value():
        raise CatalogueError(f"{path}:{line}: long_context_threshold must be a whole number of tokens")
    long_rates = Rates(
        *(
            _decimal(path, line, c, record[c])
            for c in ("long_input_per_1k", "long_cached_input_per_1k", "long_output_per_1k")
        )
    )
    return PriceRow(model, effective_from, currency, standard, int(threshold), long_rates)


def to_money(value: Decimal) -> Decimal:
    """Round to the micro-dollar, half even (the warehouse's DECIMAL(18,6))."""
    return value.quantize(MICRO)
