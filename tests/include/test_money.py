from decimal import Decimal

import pytest

from include.money import NOTHING, usd


@pytest.mark.parametrize(
    ("value", "places", "written"),
    [
        (Decimal("-237.456"), 2, "-$237.46"),
        (Decimal("1234567.5"), 2, "$1,234,567.50"),
        (-0.75, 2, "-$0.75"),
        (Decimal("0.000125"), 5, "$0.00012"),  # half-even, on the exact amount
        (Decimal("-0.004"), 2, "$0.00"),  # rounds to nothing: no sign
        (None, 2, NOTHING),
    ],
)
def test_money_is_written_one_way_with_the_sign_before_the_dollar(value, places, written):
    assert usd(value, places) == written
