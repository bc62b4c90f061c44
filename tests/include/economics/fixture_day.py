"""A hand-checked day of ledger, plans, revenue and FX (2026-11-05): every total the
tests expect is worked out next to it."""

from datetime import date, datetime
from decimal import Decimal

from include.economics.prices import DEFAULT_CATALOGUE, PriceBook

DAY = date(2026, 11, 5)
BOOK = PriceBook.from_csv(DEFAULT_CATALOGUE)


def request(request_id, user, feature, model, inp, cached, out, at, success=True, cost="0.01", duration=800):
    return {
        "request_id": request_id,
        "user_id": user,
        "feature_name": feature,
        "model_name": model,
        "input_tokens": inp,
        "cached_input_tokens": cached,
        "output_tokens": out,
        "reasoning_tokens": None,
        "total_tokens": inp + out,
        "estimated_cost": Decimal(cost),
        "request_duration_ms": duration,
        "success": success,
        "error_type": None if success else "timeout",
        "release": "2026.11.2",
        "created_at": at,
    }


# estimated_cost is what the app thought each request cost; it prices r4 at the standard
# tier (it ignores long context): (200000*0.003 + 50000*0.0003 + 1000*0.015)/1000 = 0.63
T = datetime
REQUESTS = [
    # user 1 is on "free" until 12:00, then "pro"; r1 is at the day's first instant
    request("r1", 1, "chat", "gpt-4.1-mini", 1000, 200, 500, T(2026, 11, 5, 0, 0), duration=100, cost="0.000912"),
    request("r2", 1, "chat", "gpt-4.1-mini", 2000, 0, 1000, T(2026, 11, 5, 11, 59, 59), duration=300, cost="0.00192"),
    request("r3", 1, "chat", "gpt-4.1-mini", 500, 500, 100, T(2026, 11, 5, 12, 0), False, "0.000168", 1000),
    # user 2 is "pro"; r4 is above claude-sonnet-4's 200k long-context threshold
    request(
        "r4", 2, "video-effects", "claude-sonnet-4", 250_000, 50_000, 1000, T(2026, 11, 5, 10, 0), True, "0.63", 4000
    ),
    request("r5", 2, "video-effects", "claude-sonnet-4", 100_000, 0, 2000, T(2026, 11, 5, 10, 5), True, "0.33", 2000),
    # user 3 has no plan
    request("r6", 3, "search", "text-embedding-3-small", 3000, 0, 0, T(2026, 11, 5, 23, 59, 59), True, "0.00006", 50),
    # outside the day: 24:00 belongs to the next day, 23:59:59 the day before to the previous one
    request("r7", 3, "search", "gpt-4.1", 100, 0, 50, T(2026, 11, 6, 0, 0, 0)),
    request("r8", 2, "chat", "gpt-4.1", 100, 0, 50, T(2026, 11, 4, 23, 59, 59)),
]
PLANS = [
    {"user_id": 1, "plan": "free", "valid_from": datetime(2026, 10, 1), "valid_to": datetime(2026, 11, 5, 12, 0)},
    {"user_id": 1, "plan": "pro", "valid_from": datetime(2026, 11, 5, 12, 0), "valid_to": None},
    {"user_id": 2, "plan": "pro", "valid_from": datetime(2026, 10, 1), "valid_to": None},
]

# (user, feature, model, plan): requests, failures, input, cached, output, total, cost
EXPECTED = {
    # gpt-4.1-mini from 2026-11-01: 0.00032 / 0.00008 / 0.00128 per 1k
    # r1+r2: (2800*0.00032 + 200*0.00008 + 1500*0.00128)/1000 = (0.896 + 0.016 + 1.92)/1000
    (1, "chat", "gpt-4.1-mini", "free"): (2, 0, 3000, 200, 1500, 4500, "0.002832"),
    # r3: (0*0.00032 + 500*0.00008 + 100*0.00128)/1000 = (0.04 + 0.128)/1000
    (1, "chat", "gpt-4.1-mini", "pro"): (1, 1, 500, 500, 100, 600, "0.000168"),
    # each request at its own tier:
    # r4 long rates 0.006 / 0.0006 / 0.0225: (200000*0.006 + 50000*0.0006 + 1000*0.0225)/1000 = 1.2525
    # r5 standard 0.003 / 0.0003 / 0.015: (100000*0.003 + 2000*0.015)/1000 = 0.33
    # (the sums priced at one tier would give 0.96 standard or 1.8975 long: the tier split matters)
    (2, "video-effects", "claude-sonnet-4", "pro"): (2, 0, 350_000, 50_000, 3000, 353_000, "1.582500"),
    # r6: 3000*0.00002/1000
    (3, "search", "text-embedding-3-small", "none"): (1, 0, 3000, 0, 0, 3000, "0.000060"),
}


FX = [
    {"day": date(2026, 11, 3), "currency": "EUR", "usd_per_unit": Decimal("1.10")},
    {"day": date(2026, 11, 6), "currency": "EUR", "usd_per_unit": Decimal("1.20")},  # after the day: not used
]
REVENUE = [
    {
        "user_id": 1,
        "plan": "pro",
        "amount": Decimal("20.00"),
        "currency": "USD",
        "kind": "charge",
        "occurred_at": T(2026, 11, 5, 12, 30),
    },
    # 50 EUR at the 2026-11-03 rate 1.10 = 55 USD
    {
        "user_id": 2,
        "plan": "pro",
        "amount": Decimal("50.00"),
        "currency": "EUR",
        "kind": "renewal",
        "occurred_at": T(2026, 11, 5, 1, 0),
    },
    {
        "user_id": 2,
        "plan": "pro",
        "amount": Decimal("10.00"),
        "currency": "USD",
        "kind": "refund",
        "occurred_at": T(2026, 11, 5, 18, 0),
    },
    {
        "user_id": 4,
        "plan": "basic",
        "amount": Decimal("9.99"),
        "currency": "USD",
        "kind": "failed_payment",
        "occurred_at": T(2026, 11, 5, 9, 0),
    },
    {
        "user_id": 2,
        "plan": "pro",
        "amount": Decimal("99.00"),
        "currency": "USD",
        "kind": "charge",
        "occurred_at": T(2026, 11, 4, 23, 0),
    },
]
# pro revenue: 20 + 55 - 10 = 65; basic: nothing (its only event is a failed payment)


def load_into(engine) -> None:
    """The day's ledger (requests, plans, revenue, FX) in a new ledger schema on ``engine``."""
    from include.economics import ledger

    ledger.create_ledger_schema(engine)
    with engine.begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), REQUESTS)
        connection.execute(ledger.user_plans.insert(), PLANS)
        connection.execute(ledger.revenue_events.insert(), REVENUE)
        connection.execute(ledger.fx_rates.insert(), FX)
