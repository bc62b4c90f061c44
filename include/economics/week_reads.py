"""What the weekly review reads from the warehouse: a week's rows of the published
tables, which days are there, and the week's distinct users (counted in SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics import warehouse
from include.economics.calendar import IsoWeek

WEEK_TABLES = (
    "ai_usage_daily",
    "ai_feature_daily",
    "ai_model_daily",
    "ai_plan_daily",
    "ai_release_daily",
    "ai_conversion_daily",
    "ai_margin_daily",
    "ai_anomalies",
    "ai_quality_daily",
    "ai_fleet_daily",
    "ai_devnode_daily",
    "ai_billing_reconciliation",
    "aws_spend_daily",
)
#: A published day always has its rows here (the margin's "all" row, even on a day without requests).
COVERAGE_TABLE = "ai_margin_daily"


@dataclass(frozen=True)
class Coverage:
    week: IsoWeek
    published: tuple[date, ...]

    @property
    def missing(self) -> tuple[date, ...]:
        return tuple(day for day in self.week.days() if day not in self.published)

    @property
    def complete(self) -> bool:
        return not self.missing

    def sentence(self) -> str:
        if self.complete:
            return f"All 7 days of {self.week} are in the warehouse."
        days = ", ".join(f"{d:%a} {d.isoformat()}" for d in self.missing)
        return (
            f"Only {len(self.published)} of 7 days of {self.week} are in the warehouse: {days} "
            f"{'is' if len(self.missing) == 1 else 'are'} missing, and the week's totals leave "
            f"{'it' if len(self.missing) == 1 else 'them'} out."
        )


@dataclass(frozen=True)
class WeekTables:
    """What the warehouse holds for one week."""

    week: IsoWeek
    frames: dict[str, pd.DataFrame]
    #: distinct users over the week: "all", and per feature and per plan
    users: dict[str, int]
    users_by_feature: dict[str, int]
    users_by_plan: dict[str, int]

    @property
    def coverage(self) -> Coverage:
        return Coverage(self.week, tuple(sorted(set(self.frames[COVERAGE_TABLE]["day"]))))


def coverage(engine: Engine, week: IsoWeek) -> Coverage:
    """Which days of ``week`` are published, reading only :data:`COVERAGE_TABLE`."""
    days = warehouse.read_days(engine, COVERAGE_TABLE, week.first_day, week.last_day)["day"]
    return Coverage(week, tuple(sorted(set(days))))


def _distinct_users(engine: Engine, first: date, last: date, key: str | None) -> dict[str, int]:
    table = warehouse.ai_cost_daily
    if not sa.inspect(engine).has_table(table.name):
        return {}
    users = sa.func.count(sa.distinct(table.c.user_id))
    in_week = sa.and_(table.c.day >= first, table.c.day <= last)
    if key is None:
        query = sa.select(sa.literal("all"), users).where(in_week)
    else:
        query = sa.select(table.c[key], users).where(in_week).group_by(table.c[key])
    with engine.connect() as connection:
        return {str(name): int(count) for name, count in connection.execute(query) if count}


def load_week(engine: Engine, week: IsoWeek) -> WeekTables:
    """The week's rows of every table the review reads, and its distinct users (in SQL)."""
    first, last = week.first_day, week.last_day
    return WeekTables(
        week=week,
        frames={name: warehouse.read_days(engine, name, first, last) for name in WEEK_TABLES},
        users=_distinct_users(engine, first, last, None),
        users_by_feature=_distinct_users(engine, first, last, "feature_name"),
        users_by_plan=_distinct_users(engine, first, last, "plan"),
    )
