"""Conversion from the free plan to a paid one (seed 000's daily PM panel).

Read from the application's ``user_plans``: a user converts on the day a paid plan
starts for them right where their free plan ends (its ``valid_to`` is the paid plan's
``valid_from``). The rate is the day's conversions over the users on the free plan at the
start of the day. One row per paid plan converted to, and an ``all`` row; a day without a
free user has no rate.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from include.economics.ledger import DayWindow, user_plans
from include.economics.margin import ALL_PLANS

FREE_PLAN = "free"
COLUMNS = ["day", "plan", "free_users", "conversions", "conversion_pct"]


def day_conversions(engine: Engine, day: date) -> pd.DataFrame:
    """The ``ai_conversion_daily`` rows of ``day``: conversions per paid plan and in all."""
    window = DayWindow(day)
    free, paid = user_plans.alias("free"), user_plans.alias("paid")
    on_free_at_start = (
        sa.select(sa.func.count(sa.distinct(free.c.user_id)))
        .where(free.c.plan == FREE_PLAN, free.c.valid_from <= window.start)
        .where(sa.or_(free.c.valid_to.is_(None), free.c.valid_to > window.start))
    )
    converted = (
        sa.select(paid.c.plan, sa.func.count(sa.distinct(paid.c.user_id)).label("conversions"))
        .join(free, sa.and_(free.c.user_id == paid.c.user_id, free.c.valid_to == paid.c.valid_from))
        .where(free.c.plan == FREE_PLAN, paid.c.plan != FREE_PLAN)
        .where(paid.c.valid_from >= window.start, paid.c.valid_from < window.end)
        .group_by(paid.c.plan)
    )
    with engine.connect() as connection:
        free_users = int(connection.execute(on_free_at_start).scalar_one())
        per_plan = {row.plan: int(row.conversions) for row in connection.execute(converted)}
    rows = [(plan, per_plan[plan]) for plan in sorted(per_plan)] + [(ALL_PLANS, sum(per_plan.values()))]
    return pd.DataFrame(
        [
            (day, plan, free_users, count, round(count / free_users * 100, 4) if free_users else None)
            for plan, count in rows
        ],
        columns=COLUMNS,
    )


def week_figures(rows: pd.DataFrame) -> dict[str, int | float | None]:
    """A week's ``ai_conversion_daily`` rows as its conversions and their rate over the free
    users at the start of its first published day (None: no day published)."""
    everything = rows[rows["plan"] == ALL_PLANS].sort_values("day")
    if everything.empty:
        return {"conversions": None, "conversion_pct": None}
    conversions, free_users = int(everything["conversions"].sum()), int(everything["free_users"].iloc[0])
    return {
        "conversions": conversions,
        "conversion_pct": round(conversions / free_users * 100, 2) if free_users else None,
    }
