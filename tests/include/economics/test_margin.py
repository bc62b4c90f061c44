"""Revenue, margin and reconciliation on the hand-checked day (fixture_day.py)."""

from decimal import Decimal

import pandas as pd

from include.economics import ledger, margin, rollups
from include.economics.margin import Revenue
from tests.include.economics.fixture_day import BOOK, DAY

D = Decimal


def _ai_cost_by_plan(groups):
    return {plan: sum(frame["cost_usd"], D(0)) for plan, frame in groups.groupby("plan")}


def test_revenue_converts_currencies_and_applies_kinds(ledger_db):
    groups = margin.day_revenue_groups(ledger_db, DAY)
    fx = margin.fx_for_day(ledger_db, DAY)

    revenue = margin.revenue_by_plan(groups, fx)

    assert fx["EUR"] == D("1.10")  # the rate dated 2026-11-03, not the later one
    assert revenue.by_plan == {"pro": D("65.00")}  # 20 + 50*1.10 - 10
    assert revenue.refunds_usd == D("10.00")
    assert revenue.failed_payments == {"basic": 1}
    assert revenue.missing_rates == {}
    assert revenue.payments() == {
        "basic": {"failed_payments": 1, "renewals": 0, "failed_renewals": 0},
        "pro": {"failed_payments": 0, "renewals": 1, "failed_renewals": 0},
    }


def test_a_failed_renewal_is_no_revenue_but_counted_with_what_it_put_at_risk():
    groups = pd.DataFrame(
        [
            ("pro", "USD", "renewal", 3, D("87")),
            ("pro", "EUR", "failed_renewal", 2, D("50")),
            ("team", "USD", "failed_renewal", 1, D("99")),
        ],
        columns=["plan", "currency", "kind", "events", "amount"],
    )
    revenue = margin.revenue_by_plan(groups, {"USD": D(1), "EUR": D("1.10")})
    assert revenue.by_plan == {"pro": D("87")}
    assert revenue.renewals_at_risk_usd == D("154.00")  # 50 EUR at 1.10 + 99 USD
    assert revenue.payments() == {
        "pro": {"failed_payments": 0, "renewals": 3, "failed_renewals": 2},
        "team": {"failed_payments": 0, "renewals": 0, "failed_renewals": 1},
    }


def test_a_currency_without_a_rate_is_reported_not_guessed(ledger_db):
    with ledger_db.begin() as connection:
        connection.execute(
            ledger.revenue_events.insert(),
            [
                {
                    "user_id": 5,
                    "plan": "basic",
                    "amount": D("9"),
                    "currency": "GBP",
                    "kind": "charge",
                    "occurred_at": DAY,
                }
            ],
        )

    revenue = margin.revenue_by_plan(margin.day_revenue_groups(ledger_db, DAY), margin.fx_for_day(ledger_db, DAY))

    assert revenue.missing_rates == {"GBP": 1}
    assert "basic" not in revenue.by_plan


def test_margin_per_plan_and_all_with_infra_allocated_by_ai_cost_share(ledger_db):
    groups = rollups.compute_rollups(ledger_db, BOOK, DAY)[0]
    revenue = margin.revenue_by_plan(margin.day_revenue_groups(ledger_db, DAY), margin.fx_for_day(ledger_db, DAY))

    table = margin.margin_table(DAY, _ai_cost_by_plan(groups), revenue, D("10.00"))

    rows = {r["plan"]: r for r in table.to_dict("records")}
    # AI cost per plan: free 0.002832, pro 0.000168 + 1.2525 + 0.33 = 1.582668, none 0.00006; total 1.58556
    # infra 10.00 by share: free 10*0.002832/1.58556 = 0.017861, none 0.000378,
    # pro 9.981760 + the 0.000001 rounding remainder (largest share) = 9.981761
    assert {p: (r["ai_cost_usd"], r["infra_cost_usd"]) for p, r in rows.items()} == {
        "free": (D("0.002832"), D("0.017861")),
        "none": (D("0.000060"), D("0.000378")),
        "pro": (D("1.582668"), D("9.981761")),
        "all": (D("1.585560"), D("10.000000")),
    }
    # pro: 65 - 1.582668 - 9.981761 = 53.435571 -> 82.21 %; all: 65 - 1.58556 - 10 = 53.41444 -> 82.18 %
    assert (rows["pro"]["margin_usd"], rows["pro"]["margin_pct"]) == (D("53.435571"), D("82.21"))
    assert (rows["all"]["margin_usd"], rows["all"]["margin_pct"]) == (D("53.414440"), D("82.18"))
    assert (rows["free"]["margin_usd"], rows["free"]["margin_pct"]) == (D("-0.020693"), None)
    assert sum(rows[p]["margin_usd"] for p in ("free", "none", "pro")) == rows["all"]["margin_usd"]


def test_allocation_is_exact_and_ignores_plans_without_cost():
    shares = margin.allocate(D("1"), {"a": D("1"), "b": D("1"), "c": D("1"), "zero": D("0")})

    assert shares == {"a": D("0.333334"), "b": D("0.333333"), "c": D("0.333333"), "zero": D("0")}
    assert margin.allocate(D("5"), {"a": D("0")}) == {"a": D("0")}


def test_reconciliation_flags_the_long_context_underestimate(ledger_db):
    result = margin.reconcile(rollups.compute_rollups(ledger_db, BOOK, DAY)[0], threshold_pct=5)

    # estimates: 0.000912 + 0.00192 + 0.000168 + 0.63 + 0.33 + 0.00006 = 0.96306 vs 1.58556
    assert (result.cost_usd, result.estimated_usd) == (D("1.585560"), D("0.963060"))
    assert result.drift_pct == -39.26  # (0.96306 - 1.58556) / 1.58556
    assert result.warning
    model, cost, estimate, drift = result.worst_models[0]
    assert (model, cost, estimate, drift) == ("claude-sonnet-4", D("1.582500"), D("0.960000"), -39.34)


def test_unknown_revenue_kinds_are_counted():
    import pandas as pd

    groups = pd.DataFrame([{"plan": "pro", "currency": "USD", "kind": "chargeback", "events": 2, "amount": D("5")}])

    assert margin.revenue_by_plan(groups, {"USD": D(1)}) == Revenue(unknown_kinds={"chargeback": 2})


def test_a_margin_share_of_no_revenue_or_of_refunds_exceeding_it_is_empty():
    assert margin.margin_pct(D("30"), D("120")) == D("25.00")
    assert margin.margin_pct(D("-5"), D("0")) is None
    # a day whose refunds exceed its charges: -$29 revenue, -$490 margin is no 1,690 % margin
    assert margin.margin_pct(D("-490"), D("-29")) is None
