"""ISO weeks, the unit of the weekly review: ``2026-W44`` parsed, checked and walked."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

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
