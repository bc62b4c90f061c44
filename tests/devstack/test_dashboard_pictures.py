"""The dashboards' pictures (docs/dashboards/*.png) run each provisioned query over the
points ai_economics_daily writes: every economics panel must find its data there, which
the name contract alone can't show (a tag value nothing writes, a field of another table)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from devstack import dashboard_pictures as pictures
from include.observability import build

LAST_DAY = date(2026, 11, 30)


@pytest.fixture(scope="module")
def points():
    # eight days: the anomalies panel needs the same weekday a week before
    return [*pictures.economics_points(LAST_DAY, days=8), *pictures.spend_points(LAST_DAY, days=8),
            *pictures.fleet_points(LAST_DAY)]  # fmt: skip


def test_every_economics_panel_reads_what_the_daily_dag_writes(points):
    board = build.provisioned()[0]["ai-economics"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    empty = [p["title"] for p in panels if not any(pictures.run(p["targets"][0]["query"], points).values())]
    assert empty == []
    margin = next(p for p in panels if p["title"] == "Margin % (all plans)")
    [(when, value)] = pictures.run(margin["targets"][0]["query"], points)["all"]  # last(): the newest day with one
    # the synthetic month's last day has no margin %: every renewal failed and a refund
    # left its revenue negative (margin.margin_pct), so the stat shows the day before
    assert when.date() == LAST_DAY - timedelta(days=1)
    assert isinstance(value, float)


def test_a_query_for_a_value_nobody_writes_finds_nothing(points):
    board = build.provisioned()[0]["ai-economics"]
    query = next(p for p in board["panels"] if p.get("title") == "Revenue")["targets"][0]["query"]
    assert pictures.run(query, points)
    assert pictures.run(query.replace('r.plan == "all"', 'r.plan == "everyone"'), points) == {}


def test_each_dashboard_is_drawn(points, tmp_path):
    for name, board in build.provisioned()[0].items():
        pictures.picture(board, points, tmp_path / f"{name}.png")
        assert (tmp_path / f"{name}.png").read_bytes().startswith(b"\x89PNG")
