"""A realistic, deterministic ledger for the demo and the benchmarks.

35 days ending on ``last_day`` with several plans, features and models, cached input,
reasoning tokens, a long-context model, failures, weekday seasonality, a user who
changes plan, free users converting to a paid plan every third day, revenue in USD and
EUR (dated FX) with renewals, a refund and failed renewals (every renewal of the last day
fails: a payment provider's outage, so that day's revenue drops), a price change in the
middle of the window (its own catalogue file), a planted token-burn anomaly on the last
day (``video-effects`` caught in a retry loop after release ``2026.11.3``), and a planted
regression for the weekly review: release ``2026.11.2``, shipped on the Monday of the
last full ISO week, moves ``image-gen`` to a slower, flakier provider region, so that
week's p95 latency and failure rate are worse than the week before (and the last day's
p95 is a latency anomaly that started with it).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from include.economics import ledger
from include.economics.calendar import IsoWeek
from include.economics.prices import COLUMNS, PriceBook

PLANS = (("free", 0.55), ("basic", 0.27), ("pro", 0.14), ("team", 0.04))
PLAN_PRICE_USD = {"basic": Decimal("9.00"), "pro": Decimal("29.00"), "team": Decimal("99.00")}
#: feature -> [(model, share)], mean input tokens, mean output tokens. Chat and summaries
#: route between models as the product does; video effects and image generation run on
#: one model each, so the anomaly and the regression planted in them show on that model too.
FEATURES = {
    "chat": ([("gpt-4.1-mini", 0.8), ("gpt-4.1", 0.2)], 1800, 450),
    "video-effects": ([("claude-sonnet-4", 1.0)], 60_000, 2500),
    "image-gen": ([("gemini-2.5-pro", 1.0)], 9000, 1200),
    "search": ([("text-embedding-3-small", 1.0)], 600, 0),
    "summarize": ([("gpt-4.1-mini", 0.6), ("gpt-4.1", 0.4)], 12_000, 700),
}
FEATURE_SHARE = (("chat", 0.45), ("video-effects", 0.12), ("image-gen", 0.13), ("search", 0.2), ("summarize", 0.1))
MEAN_MS = {
    "gpt-4.1-mini": 900,
    "gpt-4.1": 1800,
    "claude-sonnet-4": 7000,
    "gemini-2.5-pro": 5200,
    "text-embedding-3-small": 120,
}
ERRORS = ("timeout", "rate_limited", "provider_5xx")
ANOMALY_FEATURE, ANOMALY_RELEASE = "video-effects", "2026.11.3"
REGRESSION_FEATURE, REGRESSION_RELEASE, FIRST_RELEASE = "image-gen", "2026.11.2", "2026.11.1"
REGRESSION_SLOWDOWN, REGRESSION_FAILURE_RATE, FAILURE_RATE = 1.6, 0.07, 0.02


@dataclass(frozen=True)
class Window:
    last_day: date
    days: int = 35

    @property
    def first_day(self) -> date:
        return self.last_day - timedelta(days=self.days - 1)

    @property
    def price_change_day(self) -> date:
        return self.first_day + timedelta(days=self.days // 2)

    @property
    def review_week(self) -> IsoWeek:
        """The last ISO week over by the day after ``last_day``: the one a run that day reviews."""
        return IsoWeek.last_full_week_before(self.last_day + timedelta(days=1))

    @property
    def regression_start(self) -> date:
        return self.review_week.first_day

    def dates(self) -> list[date]:
        return [self.first_day + timedelta(days=k) for k in range(self.days)]


def write_catalogue(path: Path, window: Window) -> Path:
    """The demo's price catalogue: gpt-4.1-mini gets cheaper in the middle of the window."""
    start = window.first_day - timedelta(days=365)
    rows = [
        ("gpt-4.1", start, "0.002", "0.0005", "0.008", ""),
        ("gpt-4.1-mini", start, "0.0004", "0.0001", "0.0016", ""),
        ("gpt-4.1-mini", window.price_change_day, "0.00032", "0.00008", "0.00128", ""),
        ("claude-sonnet-4", start, "0.003", "0.0003", "0.015", ("200000", "0.006", "0.0006", "0.0225")),
        ("gemini-2.5-pro", start, "0.00125", "0.00031", "0.01", ("200000", "0.0025", "0.000625", "0.015")),
        ("text-embedding-3-small", start, "0.00002", "0.00002", "0", ""),
    ]
    lines = [",".join(COLUMNS)]
    for model, since, inp, cached, out, long_tier in rows:
        lines.append(",".join([model, since.isoformat(), "USD", inp, cached, out, *(long_tier or ("", "", "", ""))]))
    path.write_text("\n".join(lines) + "\n")
    return path


def _conversions(window: Window, free_users: list[int]) -> dict[int, tuple[datetime, str]]:
    """Free users who take a paid plan: one every third day (every fourth of them pro)."""
    days = [day for day in window.dates() if day.toordinal() % 3 == 0]
    return {
        user: (datetime.combine(day, time(14, 0)), "pro" if number % 4 == 3 else "basic")
        for number, (user, day) in enumerate(zip(free_users, days, strict=False))
    }


def _converted_rows(user: int, when: datetime, plan: str, first: datetime) -> list[dict]:
    return [
        {"user_id": user, "plan": "free", "valid_from": first - timedelta(days=90), "valid_to": when},
        {"user_id": user, "plan": plan, "valid_from": when, "valid_to": None},
    ]


def _release(window: Window, day: date) -> str:
    """The app release live on ``day``: one shipped with the regression, one on the last day."""
    if day == window.last_day:
        return ANOMALY_RELEASE
    return REGRESSION_RELEASE if day >= window.regression_start else FIRST_RELEASE


def _choice(rng: random.Random, weighted) -> str:
    return rng.choices([name for name, _ in weighted], weights=[w for _, w in weighted])[0]


def generate(
    engine: sa.engine.Engine,
    window: Window,
    book: PriceBook,
    *,
    users: int = 400,
    requests_per_day: int = 1500,
    seed: int = 7,
) -> dict[str, int]:
    """Create the ledger tables and fill them; return row counts.

    The app's ``estimated_cost`` is the standard-tier price: right for most requests,
    low for long-context ones (which the reconciliation then reports).
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not security
    ledger.create_ledger_schema(engine)
    plan_of = {user: _choice(rng, PLANS) for user in range(1, users + 1)}
    currency_of = {user: "EUR" if user % 5 == 0 else "USD" for user in plan_of}
    first = datetime.combine(window.first_day, time.min)
    plans = [
        {"user_id": u, "plan": p, "valid_from": first - timedelta(days=90), "valid_to": None}
        for u, p in plan_of.items()
    ]
    # user 7 upgrades from basic to pro half way through the window
    switch = datetime.combine(window.price_change_day, time(15, 30))
    plans = [p for p in plans if p["user_id"] != 7] + [
        {"user_id": 7, "plan": "basic", "valid_from": first - timedelta(days=90), "valid_to": switch},
        {"user_id": 7, "plan": "pro", "valid_from": switch, "valid_to": None},
    ]
    converted = _conversions(window, [user for user, plan in plan_of.items() if plan == "free"])
    plans = [p for p in plans if p["user_id"] not in converted] + [
        row for user, (when, plan) in converted.items() for row in _converted_rows(user, when, plan, first)
    ]
    requests, revenue, fx = [], [], []
    number = 0
    for day in window.dates():
        fx.append(
            {"day": day, "currency": "EUR", "usd_per_unit": Decimal("1.08") + Decimal(rng.randint(-30, 30)) / 1000}
        )
        weekend = day.weekday() >= 5
        count = int(requests_per_day * (0.6 if weekend else 1.0) * rng.uniform(0.93, 1.07))
        for _ in range(count):
            number += 1
            user = rng.randint(1, users)
            feature = _choice(rng, FEATURE_SHARE)
            models, mean_in, mean_out = FEATURES[feature]
            model = _choice(rng, models)
            inp = max(1, int(rng.lognormvariate(0, 0.6) * mean_in))
            if model == "claude-sonnet-4" and rng.random() < 0.04:
                inp = rng.randint(200_001, 320_000)  # long-context requests
            out = int(rng.lognormvariate(0, 0.5) * mean_out) if mean_out else 0
            release = _release(window, day)
            if day == window.last_day and feature == ANOMALY_FEATURE:
                inp, out = inp * 6, out * 5  # the planted token burn
            cached = int(inp * rng.choice((0, 0, 0.3, 0.6)))
            standard = book.row_for(model, day).standard
            regressed = feature == REGRESSION_FEATURE and day >= window.regression_start
            ok = rng.random() > (REGRESSION_FAILURE_RATE if regressed else FAILURE_RATE)
            error_type = rng.choice(ERRORS)
            duration = rng.lognormvariate(0, 0.4) * MEAN_MS[model] * (REGRESSION_SLOWDOWN if regressed else 1)
            requests.append(
                {
                    "request_id": f"req-{day:%Y%m%d}-{number:08d}",
                    "user_id": user,
                    "feature_name": feature,
                    "model_name": model,
                    "input_tokens": inp,
                    "cached_input_tokens": cached,
                    "output_tokens": out,
                    "reasoning_tokens": int(out * 0.3) if model == "gpt-4.1" else None,
                    "total_tokens": inp + out,
                    "estimated_cost": standard.cost(inp, cached, out).quantize(Decimal("0.000001")),
                    "request_duration_ms": int(duration),
                    "success": ok,
                    "error_type": None if ok else error_type,
                    "release": release,
                    "created_at": datetime.combine(day, time.min) + timedelta(seconds=rng.randint(0, 86_399)),
                }
            )
        for user, plan in plan_of.items():
            if plan in PLAN_PRICE_USD and (user + day.toordinal()) % 30 == 0:  # monthly renewals
                declined = (user + day.day) % 11 == 0 or day == window.last_day  # the provider's outage
                kind = "failed_renewal" if declined else "renewal"
                amount = PLAN_PRICE_USD[plan] / (Decimal("1.08") if currency_of[user] == "EUR" else 1)
                revenue.append(
                    {
                        "user_id": user,
                        "plan": plan,
                        "amount": amount.quantize(Decimal("0.01")),
                        "currency": currency_of[user],
                        "kind": kind,
                        "occurred_at": datetime.combine(day, time(6, 0)) + timedelta(minutes=user),
                    }
                )
    revenue.append(
        {
            "user_id": 12,
            "plan": "pro",
            "amount": Decimal("29.00"),
            "currency": "USD",
            "kind": "refund",
            "occurred_at": datetime.combine(window.last_day, time(11, 0)),
        }
    )
    with engine.begin() as connection:
        for start in range(0, len(requests), 5000):
            connection.execute(ledger.ai_usage_logs.insert(), requests[start : start + 5000])
        connection.execute(ledger.user_plans.insert(), plans)
        connection.execute(ledger.revenue_events.insert(), revenue)
        connection.execute(ledger.fx_rates.insert(), fx)
    return {
        "ai_usage_logs": len(requests),
        "user_plans": len(plans),
        "revenue_events": len(revenue),
        "fx_rates": len(fx),
    }
