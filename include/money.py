"""Money written for people: one way everywhere (the weekly pack, its actions, the
guardrails' findings), so a reader never meets "$-237.46" beside "-$237.46"."""

from __future__ import annotations

from decimal import Decimal

#: What a missing figure reads as (an en dash, as typeset tables do).
NOTHING = "\N{EN DASH}"


def usd(value: Decimal | float | None, places: int = 2) -> str:
    """``-$1,234.56``: the sign before the dollar, thousands grouped, ``places`` decimals
    (half-even rounding of the exact amount, never through a float for a Decimal)."""
    if value is None:
        return NOTHING
    amount = value if isinstance(value, Decimal) else Decimal(str(value))
    rounded = amount.quantize(Decimal(1).scaleb(-places))
    sign = "-" if rounded < 0 else ""
    return f"{sign}${abs(rounded):,.{places}f}"
