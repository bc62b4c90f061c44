"""Conversion from the free plan to a paid one, read from the app's user_plans."""

from datetime import datetime, timedelta

import sqlalchemy as sa

from include.economics import conversion, ledger
from tests.include.economics.fixture_day import DAY


def test_a_free_user_taking_a_paid_plan_that_day_converts(ledger_db):
    # the hand-checked day: user 1 leaves "free" for "pro" at noon; user 2 was pro already
    [pro, everything] = conversion.day_conversions(ledger_db, DAY).to_dict("records")
    assert pro == {"day": DAY, "plan": "pro", "free_users": 1, "conversions": 1, "conversion_pct": 100.0}
    assert (everything["plan"], everything["conversions"]) == ("all", 1)


def test_an_upgrade_between_paid_plans_a_later_conversion_and_a_new_free_user_are_not_counted(ledger_engine):
    ledger.create_ledger_schema(ledger_engine)
    start = datetime.combine(DAY, datetime.min.time())
    noon, before = start + timedelta(hours=12), start - timedelta(days=30)
    rows = [
        (1, "basic", before, noon),  # basic -> pro: an upgrade, not a conversion
        (1, "pro", noon, None),
        (2, "free", before, start + timedelta(days=1)),  # converts the next day
        (2, "basic", start + timedelta(days=1), None),
        (3, "free", noon, None),  # joins that day: not free at its start
        (4, "free", before, None),
        (5, "free", before, noon),  # converts to team
        (5, "team", noon, None),
    ]
    with ledger_engine.begin() as connection:
        connection.execute(
            ledger.user_plans.insert(),
            [dict(zip(("user_id", "plan", "valid_from", "valid_to"), row, strict=True)) for row in rows],
        )
    frame = conversion.day_conversions(ledger_engine, DAY)
    assert frame[["plan", "free_users", "conversions"]].values.tolist() == [["team", 3, 1], ["all", 3, 1]]
    assert frame["conversion_pct"].tolist() == [33.3333, 33.3333]


def test_a_day_without_free_users_has_no_rate():
    engine = sa.create_engine("sqlite://")
    ledger.create_ledger_schema(engine)
    [everything] = conversion.day_conversions(engine, DAY).to_dict("records")
    assert (everything["plan"], everything["conversions"], everything["conversion_pct"]) == ("all", 0, None)
