"""The economics' calendar: which day a daily run computes, which week a review covers,
and the refusal of one that is not over (include/economics/calendar.py)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from include.economics import calendar
from include.economics.calendar import IsoWeek
from include.errors import InvalidRequest


def test_the_day_defaults_to_the_one_before_the_scheduled_run():
    assert calendar.day_to_compute(None, datetime(2026, 11, 6, 2, 0, tzinfo=UTC)) == date(2026, 11, 5)
    assert calendar.day_to_compute("2026-11-01", None) == date(2026, 11, 1)
    assert calendar.daily_logical_date(date(2026, 11, 5)) == datetime(2026, 11, 6, 2, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("2026-13-01", "day '2026-13-01' is not a YYYY-MM-DD date"),
        (0, "is not over yet (UTC)"),  # days from today, taken when the test runs: a suite
        (3, "only past days can be computed"),  # collected before midnight UTC runs after it
    ],
)
def test_a_day_that_is_not_a_date_or_not_over_is_refused(requested, message):
    if isinstance(requested, int):
        requested = (datetime.now(UTC).date() + timedelta(days=requested)).isoformat()
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        calendar.day_to_compute(requested, None)


def test_the_week_defaults_to_the_one_before_the_run():
    monday_run = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

    assert calendar.week_to_review(None, monday_run, today=date(2026, 11, 23)) == IsoWeek(2026, 47)
    assert calendar.week_to_review("2026-W44", None, today=date(2026, 11, 23)) == IsoWeek(2026, 44)


def test_a_manual_run_without_a_logical_date_reviews_the_last_full_week():
    # the REST API and the CLI trigger with logical_date null; the run's date is then unknown here
    assert calendar.week_to_review(None, None, today=date(2026, 11, 30)) == IsoWeek(2026, 48)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        ("2026-W60", "week '2026-W60' does not exist: 2026 has weeks W01 to W53"),
        ("2026-W48", "week 2026-W48 ends on 2026-11-29 and is not over yet (UTC)"),
        ("2026-W47", "week 2026-W47 ends on 2026-11-22 and is not over yet (UTC)"),
    ],
)
def test_a_bad_week_is_refused(requested, message):
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        calendar.week_to_review(requested, None, today=date(2026, 11, 22))
