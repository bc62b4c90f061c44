"""The week's headline figures summed straight from the warehouse in SQL, independently
of :mod:`include.economics.weekly`: what the review and its pack are checked against;
and a day taken out of the warehouse, as a failed daily run leaves it."""

from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from include.economics import warehouse
from include.economics.calendar import IsoWeek

SUMS = {
    "ai_cost_usd": "SELECT SUM(cost_usd) FROM ai_cost_daily WHERE day BETWEEN :first AND :last",
    "infra_cost_usd": "SELECT SUM(cost_usd) FROM (SELECT day, cost_usd FROM ai_fleet_daily UNION ALL "
    "SELECT day, cost_usd FROM ai_devnode_daily) AS gpu WHERE day BETWEEN :first AND :last",
    "revenue_usd": "SELECT SUM(revenue_usd) FROM ai_margin_daily WHERE plan = 'all' AND day BETWEEN :first AND :last",
    "margin_usd": "SELECT SUM(margin_usd) FROM ai_margin_daily WHERE plan = 'all' AND day BETWEEN :first AND :last",
    "requests": "SELECT SUM(requests) FROM ai_usage_daily WHERE day BETWEEN :first AND :last",
    "failures": "SELECT SUM(failures) FROM ai_usage_daily WHERE day BETWEEN :first AND :last",
    "dau": "SELECT AVG(dau) FROM ai_usage_daily WHERE day BETWEEN :first AND :last",
}
MONEY = ("ai_cost_usd", "infra_cost_usd", "revenue_usd", "margin_usd")


def week_sums(engine: sa.engine.Engine, week: IsoWeek) -> dict[str, Decimal | int | float]:
    """Money to the micro-dollar as Decimal, counts as int, DAU as float."""
    found = {}
    with engine.connect() as connection:
        for name, sql in SUMS.items():
            value = connection.execute(sa.text(sql), {"first": week.first_day, "last": week.last_day}).scalar()
            if name in MONEY:
                found[name] = Decimal(str(value)).quantize(Decimal("0.000001"))
            else:
                found[name] = float(value) if name == "dau" else int(value)
    return found


def drop_day(engine: sa.engine.Engine, day) -> None:
    """Delete ``day`` from every warehouse table."""
    with engine.begin() as connection:
        for table in warehouse.TABLES.values():
            connection.execute(table.delete().where(table.c.day == day))
