"""The alert rules on the daily economics (group ``economics``): cost, p95 latency and
failure-rate anomalies, a revenue drop against the same weekday, a tokens-per-minute spike, the margin
under its floor, failing plan renewals, failed payments. Each has a warning and a critical tier and a runbook line."""

from __future__ import annotations

from include.alerts import SEVERITIES
from include.economics.day_alerts import RENEWAL_FAILURE_PCT
from include.economics.margin import ALL_PLANS, MARGIN_FLOOR_PCT
from include.observability.catalogue import ECONOMICS_BUCKET
from include.observability.rule_spec import VALUE, RuleSpec, economics_query, tiers

#: An anomaly's release (the daily DAG names the one its change started with), when it has one.
STARTED_WITH = "{{ if $labels.release }}; it started with release {{ $labels.release }}{{ end }}"
#: The 28 days before yesterday's peak, as one number the query divides by.
PEAK_BASELINE = (
    f'baseline = from(bucket: "{ECONOMICS_BUCKET}")',
    "  |> range(start: -29d, stop: -30h)",
    '  |> filter(fn: (r) => r._measurement == "ai_usage" and r._field == "peak_tokens_per_minute")',
    "  |> mean()",
    "  |> findRecord(fn: (key) => true, idx: 0)",
)
#: Revenue of all plans on the same weekday a week before yesterday, as one number.
WEEK_BEFORE_REVENUE = (
    f'week_before = from(bucket: "{ECONOMICS_BUCKET}")',
    "  |> range(start: -9d, stop: -7d)",
    f'  |> filter(fn: (r) => r._measurement == "ai_margin" and r._field == "revenue_usd" and r.plan == "{ALL_PLANS}")',
    "  |> last()",
    "  |> findRecord(fn: (key) => true, idx: 0)",
)


def economics_rules() -> list[RuleSpec]:
    """The ``economics`` group: what the daily numbers say (anomalies, revenue, margin, payments)."""
    floor = float(MARGIN_FLOOR_PCT)
    specs = [
        RuleSpec(
            f"bp-cost-anomaly-{severity}",
            f"Daily AI cost anomaly ({severity})",
            "economics",
            severity,
            economics_query(
                "ai_anomaly",
                ["value"],
                [("signal", "cost"), ("severity", severity)],
                ('group(columns: ["dimension", "release"])', "last()"),
            ),
            "last",
            ("gt", 0),
            "10m",
            36 * 3600,
            f"AI cost of {{{{ $labels.dimension }}}} was {VALUE} USD yesterday, "
            f"{severity} above its same-weekday baseline{STARTED_WITH}",
            "Open the AI economics dashboard for that feature or model, then the day's ai_anomalies row "
            "(value, baseline); check the release that shipped that day and the model's prices.",
        )
        for severity in SEVERITIES
    ]
    specs += [
        RuleSpec(
            f"bp-{name}-anomaly-{severity}",
            f"{title} anomaly ({severity})",
            "economics",
            severity,
            economics_query(
                "ai_anomaly",
                ["value"],
                [("signal", signal), ("severity", severity)],
                ('group(columns: ["dimension", "release"])', "last()"),
            ),
            "last",
            ("gt", 0),
            "10m",
            36 * 3600,
            f"{title} of {{{{ $labels.dimension }}}} was {VALUE}{unit} yesterday, "
            f"{severity} above its same-weekday baseline{STARTED_WITH}",
            runbook,
        )
        for name, signal, title, unit, runbook in (
            (
                "latency",
                "latency",
                "p95 latency",
                " ms",
                "Check the model provider's status and region for that feature's models, its failure rate on the AI "
                "economics dashboard, and the release that shipped that day (the alert's release).",
            ),
            (
                "failure-rate",
                "failure_rate",
                "Failure rate",
                " (a share of its requests)",
                "Read the feature's error types in the ledger (timeouts, rate limits, provider 5xx), the model "
                "provider's status, and the release the change started with (the daily alert names it).",
            ),
        )
        for severity in SEVERITIES
    ]
    specs += tiers(
        "bp-revenue-drop",
        "Revenue drop against the same weekday",
        "economics",
        {"warning": (0.8, "10m"), "critical": (0.6, "10m")},
        op="lt",
        query=economics_query(
            "ai_margin",
            ["revenue_usd"],
            [("plan", ALL_PLANS)],
            preamble=WEEK_BEFORE_REVENUE,
            then=("last()", "map(fn: (r) => ({r with _value: float(v: r._value) / float(v: week_before._value)}))"),
        ),
        subject="plan",
        reducer="last",
        window_s=36 * 3600,
        summary=f"Revenue of all plans yesterday was {VALUE} times the same weekday a week before",
        runbook="Check the day's failed payments and refunds per plan (AI economics dashboard), the payment "
        "provider's status, and the release that shipped that day.",
    )
    specs += tiers(
        "bp-tokens-per-minute-spike",
        "Tokens per minute spike",
        "economics",
        {"warning": (2.0, "10m"), "critical": (4.0, "10m")},
        query=economics_query(
            "ai_usage",
            ["peak_tokens_per_minute"],
            preamble=PEAK_BASELINE,
            then=("last()", "map(fn: (r) => ({r with _value: float(v: r._value) / float(v: baseline._value)}))"),
        ),
        subject="model",
        reducer="last",
        window_s=29 * 86400,
        summary=f"Peak tokens per minute yesterday was {VALUE} times its 28-day mean",
        runbook="Find the feature and model with the peak on the AI economics dashboard; a runaway client or "
        "agent loop shows as one feature's tokens. Rate-limit it before the provider does.",
    )
    specs += tiers(
        "bp-margin-under-floor",
        "Margin under the floor",
        "economics",
        {"warning": (floor, "10m"), "critical": (0.0, "10m")},
        op="lt",
        query=economics_query("ai_margin", ["margin_pct"], [("plan", ALL_PLANS)]),
        subject="plan",
        reducer="last",
        window_s=36 * 3600,
        summary=f"Margin over all plans was {VALUE} % yesterday (floor {MARGIN_FLOOR_PCT} %; under 0: losing money)",
        runbook="Compare revenue and cost per plan on the AI economics dashboard; a cost jump without a revenue "
        "jump points at a model or a feature (see the cost anomalies), a revenue drop at payments.",
    )
    share = RENEWAL_FAILURE_PCT
    specs += tiers(
        "bp-renewal-failures",
        "Plan renewals failing",
        "economics",
        {"warning": (share["warning"], "10m"), "critical": (share["critical"], "10m")},
        op="gt",
        query=economics_query(
            "ai_payment",
            ["renewals", "failed_renewals"],
            then=(
                'pivot(rowKey: ["_time", "plan"], columnKey: ["_field"], valueColumn: "_value")',
                "group()",
                "reduce(identity: {renewals: 0.0, failed_renewals: 0.0}, fn: (r, accumulator) => ({renewals: "
                "accumulator.renewals + float(v: r.renewals), failed_renewals: accumulator.failed_renewals + "
                "float(v: r.failed_renewals)}))",
                "map(fn: (r) => ({_value: if r.renewals + r.failed_renewals > 0.0 then r.failed_renewals / "
                "(r.renewals + r.failed_renewals) * 100.0 else 0.0}))",
            ),
        ),
        subject="plan",
        reducer="last",
        window_s=36 * 3600,
        summary=f"{VALUE} % of yesterday's plan renewals failed (all plans)",
        runbook="Check the payment provider's declines for the day (card expiry, insufficient funds; an outage "
        "when they all fail at once) and the dunning retries; failed first charges alert apart.",
    )
    specs += tiers(
        "bp-failed-payments",
        "Failed payments",
        "economics",
        {"warning": (0, "10m"), "critical": (10, "10m")},
        query=economics_query("ai_payment", ["failed_payments"], then=('group(columns: ["plan"])', "sum()")),
        subject="plan",
        reducer="last",
        window_s=36 * 3600,
        summary=f"{VALUE} payment(s) failed yesterday on plan {{{{ $labels.plan }}}}",
        runbook="Check the payment provider's dashboard for that day's declines; many at once means the "
        "integration, not the cards.",
    )
    return specs
