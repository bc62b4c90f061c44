"""The economics' calendar: the day a daily run computes and the ISO week a review
covers (``2026-W44`` parsed, checked and walked), each refused while it is not over."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from include.errors import InvalidRequest

#: When the daily economics run starts (UTC): it computes the day before.
DAILY_RUN_AT = time(2)
DAILY_SCHEDULE = f"{DAILY_RUN_AT.minute} {DAILY_RUN_AT.hour} * * *"

#: ``2026-W44``: a year and a week number 01..53 (whether W53 exists is checked by parse).
ISO_WEEK_PATTERN = r"^(\d{4})-W(0[1-9]|[1-4]\d|5[0-3])$"
_WEEK = re.compile(r"(\d{4})-W(\d{2})")


class InvalidWeek(ValueError):
    """A week param that is not a real ISO week, or one that is not over yet."""


@dataclass(frozen=True, order=True)
class IsoWeek:
    year: int
    week: int

    @classmethod
    def parse(cls, text: str) -> IsoWeek:
        """``2026-W44`` -> IsoWeek; a clear error for anything else (W53 only where it exists)."""
        match = _WEEK.fullmatch(text.strip()) if isinstance(text, str) else None
        if not match:
            raise InvalidWeek(f"week {text!r} is not an ISO week like 2026-W44")
        year, week = int(match[1]), int(match[2])
        weeks_in_year = date(year, 12, 28).isocalendar().week  # 28 December is always in the last week
        if not 1 <= week <= weeks_in_year:
            raise InvalidWeek(f"week {text!r} does not exist: {year} has weeks W01 to W{weeks_in_year}")
        return cls(year, week)

    @classmethod
    def containing(cls, day: date) -> IsoWeek:
        iso = day.isocalendar()
        return cls(iso.year, iso.week)

    @classmethod
    def last_full_week_before(cls, day: date) -> IsoWeek:
        """The latest ISO week that ended before ``day`` (a Monday run reviews the week just over)."""
        return cls.containing(day).previous()

    @property
    def first_day(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def last_day(self) -> date:
        return self.first_day + timedelta(days=6)

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=k) for k in range(7)]

    def previous(self) -> IsoWeek:
        return IsoWeek.containing(self.first_day - timedelta(days=7))

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def day_to_compute(requested: str | None, logical_date: Any, today: date | None = None) -> date:
    """The ``day`` param, else the day before the scheduled run; it must be over (UTC)."""
    if requested:
        try:
            day = date.fromisoformat(requested)
        except ValueError:
            raise InvalidRequest(f"day {requested!r} is not a YYYY-MM-DD date") from None
    else:
        day = logical_date.date() - timedelta(days=1)
    if day >= (today or datetime.now(UTC).date()):
        raise InvalidRequest(f"day {day} is not over yet (UTC): only past days can be computed")
    return day


def daily_logical_date(day: date) -> datetime:
    """The scheduled daily run that computes ``day`` (the :data:`DAILY_RUN_AT` run of the day after)."""
    return datetime.combine(day + timedelta(days=1), DAILY_RUN_AT, tzinfo=UTC)


def week_to_review(requested: str | None, run_date: Any, today: date | None = None) -> IsoWeek:
    """The ``week`` param, or the ISO week before the run's date (its logical date, or when it
    was triggered for a manual run without one); it must be over."""
    today = today or datetime.now(UTC).date()
    run_day = run_date.date() if run_date else today
    try:
        week = IsoWeek.parse(requested) if requested else IsoWeek.last_full_week_before(run_day)
    except InvalidWeek as error:
        raise InvalidRequest(str(error)) from None
    if week.last_day >= today:
        raise InvalidRequest(
            f"week {week} ends on {week.last_day} and is not over yet (UTC): only past weeks have a review"
        )
    return week
