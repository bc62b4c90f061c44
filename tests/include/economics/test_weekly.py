"""The weekly review's figures, against the warehouse they come from."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from devstack import economics_demo
from include.economics import warehouse
from include.economics.calendar import InvalidWeek, IsoWeek
from include.economics.review import build_review, fleet_week_figures
from include.economics.review_model import Rules
from include.economics.week_reads import load_week
from tests.include.economics.week_sums import drop_day, week_sums

W47 = IsoWeek(2026, 47)
MISSING = date(2026, 11, 18)


def _review(engine, week=W47, **kwargs):
    return build_review(load_week(engine, week), load_week(engine, week.previous()), **kwargs)


@pytest.mark.parametrize(
    ("text", "week"),
    [("2026-W47", (2026, 47)), ("2026-W53", (2026, 53)), ("2027-W01", (2027, 1)), (" 2026-W01 ", (2026, 1))],
)
def test_an_iso_week_parses(text, week):
    assert IsoWeek.parse(text) == IsoWeek(*week)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2025-W53", "does not exist: 2025 has weeks W01 to W52"),
        ("2026-W00", "does not exist"),
        ("2026-47", "is not an ISO week like 2026-W44"),
        ("2026-W47; rm -rf /", "is not an ISO week"),
        ("", "is not an ISO week"),
    ],
)
def test_a_bad_week_is_refused_with_the_reason(text, message):
    with pytest.raises(InvalidWeek, match=message):
        IsoWeek.parse(text)


def test_weeks_know_their_days_and_the_last_full_week():
    assert (W47.first_day, W47.last_day, str(W47)) == (date(2026, 11, 16), date(2026, 11, 22), "2026-W47")
    assert W47.previous() == IsoWeek(2026, 46)
    assert IsoWeek(2027, 1).previous() == IsoWeek(2026, 53)
    assert IsoWeek.last_full_week_before(date(2026, 11, 23)) == W47  # the Monday run
    assert IsoWeek.last_full_week_before(date(2026, 11, 22)) == IsoWeek(2026, 46)  # W47 not over
    assert IsoWeek.last_full_week_before(date(2027, 1, 1)) == IsoWeek(2026, 52)


def test_the_headline_is_the_warehouse_sums_of_the_week(review_warehouse):
    review = _review(review_warehouse)
    sums = week_sums(review_warehouse, W47)
    micro = Decimal("0.000001")

    assert review.coverage.complete
    for money in ("ai_cost_usd", "infra_cost_usd", "revenue_usd", "margin_usd"):
        assert review.metric(money).value == pytest.approx(sums[money], abs=micro), money
    assert review.metric("requests").value == sums["requests"]
    assert review.metric("failure_rate").value == pytest.approx(sums["failures"] / sums["requests"], abs=1e-6)
    assert review.metric("dau").value == pytest.approx(sums["dau"], abs=0.05)
    margin, revenue = review.metric("margin_usd").value, review.metric("revenue_usd").value
    assert review.metric("margin_pct").value == (margin / revenue * 100).quantize(Decimal("0.01"))
    # the plans add up to the whole (each day's plan rows are rounded on their own: a micro-dollar a day)
    assert sum((p.cost_usd for p in review.plans), Decimal(0)) == pytest.approx(sums["ai_cost_usd"], abs=7 * micro)
    assert sum(row.requests for row in review.model_mix) == sums["requests"]


def test_the_week_over_week_change_uses_the_week_before(review_warehouse):
    review = _review(review_warehouse)
    requests = review.metric("requests")
    before = week_sums(review_warehouse, W47.previous())["requests"]

    assert requests.previous == before
    assert requests.change == round((requests.value - before) / before * 100, 1)
    failure_rate = review.metric("failure_rate")
    assert failure_rate.change_unit == "pp"
    assert failure_rate.change == round((failure_rate.value - failure_rate.previous) * 100, 2)
    assert failure_rate.verdict == "worse"  # the planted image-gen regression


def test_the_planted_regression_is_found_and_nothing_else(review_warehouse):
    review = _review(review_warehouse)

    found = {(r.dimension, r.metric) for r in review.regressions}
    assert found == {
        ("feature:image-gen", "failure_rate"),
        ("feature:image-gen", "p95_ms"),
        ("model:gemini-2.5-pro", "failure_rate"),
        ("model:gemini-2.5-pro", "p95_ms"),
    }
    p95 = next(r for r in review.regressions if r.dimension == "feature:image-gen" and r.metric == "p95_ms")
    assert p95.current / p95.previous > 1.4
    # feature and model share every figure (the same requests): one action, not four
    [action] = [a for a in review.actions if a.text.startswith("Investigate")]
    assert action.text.startswith("Investigate feature:image-gen (and model:gemini-2.5-pro: the same requests): ")
    assert "failure rate +" in action.text
    assert "p95 latency +" in action.text
    # the synthetic ledger ships release 2026.11.2 with the regression, on the week's Monday
    assert {r.release for r in review.regressions} == {"2026.11.2"}
    assert action.text.endswith("week over week, started with release 2026.11.2.")


def test_the_week_s_conversions_are_the_sum_of_its_days_over_its_first_free_users(review_warehouse):
    review = _review(review_warehouse)
    rows = warehouse.read_days(review_warehouse, "ai_conversion_daily", W47.first_day, W47.last_day)
    everything = rows[rows["plan"] == "all"].sort_values("day")

    assert review.metric("conversions").value == int(everything["conversions"].sum()) > 0
    rate = review.metric("conversion_pct").value
    assert rate == round(review.metric("conversions").value / int(everything["free_users"].iloc[0]) * 100, 2)


def test_a_plan_without_revenue_that_costs_money_is_an_action(review_warehouse):
    review = _review(review_warehouse)

    free = next(plan for plan in review.plans if plan.name == "free")
    assert free.margin_pct is None
    assert free.margin_usd < 0
    [action] = [a for a in review.actions if a.text.startswith("Plan free earned no revenue")]
    assert f"cost ${free.cost_usd:,.2f}" in action.text
    assert f"margin -${-free.margin_usd:,.2f})" in action.text  # the sign before the dollar, as everywhere


def test_looser_rules_find_no_regression(review_warehouse):
    rules = Rules.from_mapping({"failure_rate_pp": "20", "p95_pct": 100})

    assert _review(review_warehouse, rules=rules).regressions == []
    with pytest.raises(ValueError, match="unknown weekly review rule"):
        Rules.from_mapping({"p99_pct": 5})


def test_a_missing_day_is_named_and_left_out_of_the_totals(review_warehouse):
    full = _review(review_warehouse)
    drop_day(review_warehouse, MISSING)

    review = _review(review_warehouse)

    assert review.coverage.missing == (MISSING,)
    assert review.coverage.sentence() == (
        "Only 6 of 7 days of 2026-W47 are in the warehouse: Wed 2026-11-18 is missing, "
        "and the week's totals leave it out."
    )
    assert review.metric("requests").value == week_sums(review_warehouse, W47)["requests"]
    assert review.metric("requests").value < full.metric("requests").value
    assert review.actions[0].severity == "high"
    assert review.actions[0].text.startswith("Re-run ai_economics_daily for 2026-11-18")
    wednesday = next(q for q in review.quality_days if q.day == MISSING)
    assert (wednesday.published, wednesday.checks) == (False, 0)


def test_an_anomaly_flagged_on_two_days_persisted_and_is_open_at_week_end(review_warehouse):
    rows = pd.DataFrame(
        [
            {
                "day": day,
                "signal": "cost",
                "dimension": "feature:chat",
                "value": Decimal(value),
                "baseline": Decimal("4.0"),
                "severity": severity,
                "release": "2026.11.3",
            }
            for day, value, severity in (
                (date(2026, 11, 20), "9.5", "warning"),
                (date(2026, 11, 22), "31.0", "critical"),
            )
        ]
    )
    with review_warehouse.begin() as connection:
        connection.execute(warehouse.ai_anomalies.insert(), warehouse.records(warehouse.ai_anomalies, rows))

    [anomaly] = [a for a in _review(review_warehouse).anomalies if a.dimension == "feature:chat"]

    assert anomaly.days == (date(2026, 11, 20), date(2026, 11, 22))
    assert (anomaly.severity, anomaly.peak_value) == ("critical", Decimal("31.000000"))
    assert anomaly.status == "persisted 2 days, still open at week end"


def test_fleets_carry_the_margin_s_gpu_hours_and_cloudwatch_figures(review_warehouse):
    hours = sum(m["ActiveWorkers"] for day in W47.days() for m in economics_demo.fleet_hours(day))
    figures = fleet_week_figures(
        {
            ("QueueDepth", "Maximum"): [4, 12, 0],
            ("QueueDepth", "Average"): [1.0, 2.0, 0.0],
            ("ActiveWorkers", "Maximum"): [2, 3, 2],
            ("ActiveWorkers", "Average"): [1.0, 1.5, 1.0],
            ("ErrorRate", "Average"): [6.0, 7.0],
            ("SpotInterruptionCount", "Sum"): [1, 0, 3],
        }
    )

    [fleet] = _review(review_warehouse, fleet_metrics={"staging/gpu-default": figures}).fleets

    assert (fleet.stage, fleet.fleet, fleet.gpu_hours) == ("staging", "gpu-default", hours)
    assert fleet.cost_usd == Decimal(str(hours)) * Decimal("0.2256")  # the estimate's g4dn.xlarge price
    assert (fleet.queue_depth_max, fleet.queue_depth_avg, fleet.spot_interruptions) == (12, 1.0, 4)
    actions = " ".join(
        a.text for a in _review(review_warehouse, fleet_metrics={"staging/gpu-default": figures}).actions
    )
    assert "lost 4 Spot instances" in actions
    assert "failed 6.5% of its jobs" in actions
    assert fleet_week_figures({})["spot_interruptions"] is None


def test_dev_nodes_carry_the_hours_their_lifecycle_events_put_them_in_running(review_warehouse):
    [node] = _review(review_warehouse).dev_nodes
    days = [d for day in W47.days() for d in economics_demo.dev_node_days(day)]
    hours, cost = sum(d.node_hours for d in days), sum(d.cost_usd for d in days)

    assert (node.stage, node.name, node.owner, node.instance_type) == ("staging", "bob-flux", "bob", "g5.xlarge")
    assert hours > 0
    assert node.node_hours == pytest.approx(hours)
    assert cost == pytest.approx(Decimal(str(hours)) * Decimal("0.4024"), abs=Decimal("0.00001"))  # g5.xlarge
    assert node.cost_usd == pytest.approx(cost, abs=Decimal("0.00001"))  # each day's cost as the warehouse keeps it


def test_every_published_day_has_its_gate_verdicts(review_warehouse):
    review = _review(review_warehouse)

    assert [q.published for q in review.quality_days] == [True] * 7
    assert {q.checks for q in review.quality_days} == {29}


def _cost_rows(day, users):
    return pd.DataFrame(
        [
            {
                "day": day,
                "user_id": user,
                "feature_name": feature,
                "model_name": "gpt-4.1-mini",
                "plan": "pro" if user % 2 else "free",
                "requests": 1,
                "failures": 0,
                "input_tokens": 10,
                "cached_input_tokens": 0,
                "output_tokens": 5,
                "total_tokens": 15,
                "cost_usd": Decimal("0.001"),
                "p50_ms": 100.0,
                "p95_ms": 100.0,
            }
            for user, feature in users
        ]
    )


def test_weekly_users_are_distinct_over_the_week_on_every_database(ledger_engine):
    warehouse.metadata.create_all(ledger_engine)
    with ledger_engine.begin() as connection:
        for day, users in (
            (date(2026, 11, 16), [(1, "chat"), (2, "chat"), (3, "search")]),
            (date(2026, 11, 17), [(1, "chat"), (1, "search"), (4, "chat")]),
            (date(2026, 11, 23), [(9, "chat")]),  # the week after
        ):
            connection.execute(
                warehouse.ai_cost_daily.insert(), warehouse.records(warehouse.ai_cost_daily, _cost_rows(day, users))
            )

    tables = load_week(ledger_engine, W47)

    assert tables.users == {"all": 4}
    assert tables.users_by_feature == {"chat": 3, "search": 2}
    assert tables.users_by_plan == {"pro": 2, "free": 2}
    assert tables.coverage.published == ()  # no margin rows: no published day


def test_a_revenue_or_margin_drop_beyond_its_rule_is_an_action_naming_its_driver(review_warehouse):
    import sqlalchemy as sa

    untouched = _review(review_warehouse)
    assert not [a for a in untouched.actions if a.text.startswith(("Revenue fell", "Margin fell"))]  # both rose

    # W47 loses plan pro's revenue (its margin with it), chat and gpt-4.1-mini cost twice as
    # much, and the model's cost anomaly started with a release
    margins, features, models = warehouse.ai_margin_daily, warehouse.ai_feature_daily, warehouse.ai_model_daily
    in_week = margins.c.day.between(W47.first_day, W47.last_day)
    with review_warehouse.begin() as connection:
        query = sa.select(margins.c.day, margins.c.revenue_usd).where(in_week, margins.c.plan == "pro")
        lost = dict(connection.execute(query).all())
        for day, amount in lost.items():
            for plan in ("pro", "all"):
                row = (margins.c.day == day) & (margins.c.plan == plan)
                connection.execute(margins.update().where(row).values(
                    revenue_usd=margins.c.revenue_usd - amount, margin_usd=margins.c.margin_usd - amount))  # fmt: skip
        connection.execute(features.update().where(features.c.day.between(W47.first_day, W47.last_day),
                           features.c.feature_name == "chat").values(cost_usd=features.c.cost_usd * 2))  # fmt: skip
        connection.execute(models.update().where(models.c.day.between(W47.first_day, W47.last_day),
                           models.c.model_name == "gpt-4.1-mini").values(cost_usd=models.c.cost_usd * 2))  # fmt: skip
        connection.execute(warehouse.ai_anomalies.insert(), [{
            "day": W47.last_day, "signal": "cost", "dimension": "model:gpt-4.1-mini", "value": 90, "baseline": 40,
            "severity": "critical", "release": "2026.11.9"}])  # fmt: skip

    review = _review(review_warehouse)

    moves = {a.text.split(" ")[0]: a for a in review.actions if a.text.startswith(("Revenue fell", "Margin fell"))}
    assert set(moves) == {"Revenue", "Margin"}
    pro = next(p for p in review.plans if p.name == "pro")
    assert f"; most of it plan pro (-${pro.previous_revenue_usd:,.2f})" in moves["Revenue"].text
    chat = next(f for f in review.features if f.name == "chat")
    mini = next(m for m in review.model_mix if m.model == "gpt-4.1-mini")
    assert (
        f"the largest cost rises are feature chat (+${chat.cost_usd - chat.previous_cost_usd:,.2f}) and model "
        f"gpt-4.1-mini (+${mini.cost_usd - mini.previous_cost_usd:,.2f}), started with release 2026.11.9: "
        in moves["Margin"].text
    )
    assert {a.severity for a in moves.values()} == {"high"}
    loose = _review(review_warehouse, rules=Rules.from_mapping({"revenue_drop_pct": 99, "margin_drop_pct": 1000}))
    assert not [a for a in loose.actions if a.text.startswith(("Revenue fell", "Margin fell"))]
