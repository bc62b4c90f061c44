"""Grafana-managed alert rules, contact points and notification policies, built with the
Foundation SDK's alerting builders and written as Grafana provisioning files
(``infra/grafana/provisioning/alerting/``).

Seed 000's alerting principles, as rules: actionable signals only; a warning and a
critical tier; sustained windows (every rule holds its condition for a while before it
fires, ``for``); context in the notification (the metric, its value, the threshold, the
fleet, feature or model from the series' labels) and a runbook line saying what to do.
Alerts route by ``stage`` and ``severity`` to the stage's SNS topic (the topic the
Airflow notifier publishes to, ``bp-ops-alerts-<stage>``), critical ones without delay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RelativeTimeRange
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from include.alerts import DEFAULT_TOPIC, SEVERITIES
from include.economics.margin import ALL_PLANS, MARGIN_FLOOR_PCT
from include.fleets.config import ALARM_DEFAULTS
from include.naming import platform
from include.observability.catalogue import ECONOMICS_BUCKET, FLEET_MEASUREMENT, TELEMETRY_BUCKET, cloudwatch_field
from include.observability.flux import DATASOURCE_UID, Flux, FluxTarget

FOLDER = "BP alerts"
EXPRESSIONS = DataSourceRef(type_val="__expr__", uid="__expr__")
#: How often each group is evaluated: the daily economics need not be read every minute.
GROUP_INTERVALS = {"economics": "5m", "fleets": "1m", "pipeline": "1m"}
FLEET_LABELS = ("stage", "fleet_slug")


@dataclass(frozen=True)
class RuleSpec:
    """One alert rule: a Flux query reduced to one number per series (``V``), held
    against a threshold (``T``) for ``for_`` before the alert fires. The query does any
    arithmetic itself: a math expression's ``$A`` is the kind of text provisioning files
    interpolate as an environment variable."""

    uid: str
    title: str
    group: str
    severity: str
    query: Flux
    reducer: str
    threshold: tuple[str, float]
    for_: str
    window_s: int
    summary: str
    runbook: str
    no_data: str = "OK"


def _economics(measurement: str, fields: list[str], where=(), then=("last()",), start="-36h", preamble=()) -> Flux:
    return Flux(ECONOMICS_BUCKET, measurement, fields, where, then, start=start, stop="now()", preamble=preamble)


def _fleet(fields: list[str], then: tuple[str, ...], start: str) -> Flux:
    return Flux(TELEMETRY_BUCKET, FLEET_MEASUREMENT, fields, then=then, start=start, stop="now()")


GROUP_BY_FLEET = f'group(columns: ["{FLEET_LABELS[0]}", "{FLEET_LABELS[1]}"])'
#: "$values.V.Value" is the reduced value of the rule, "$labels" the series' labels.
VALUE = "{{ humanize $values.V.Value }}"
FLEET = "{{ $labels.stage }}/{{ $labels.fleet_slug }}"
ECONOMICS_DAG = "ai_economics_daily"
#: The 28 days before yesterday's peak, as one number the query divides by.
PEAK_BASELINE = (
    f'baseline = from(bucket: "{ECONOMICS_BUCKET}")',
    "  |> range(start: -29d, stop: -30h)",
    '  |> filter(fn: (r) => r._measurement == "ai_usage" and r._field == "peak_tokens_per_minute")',
    "  |> mean()",
    "  |> findRecord(fn: (key) => true, idx: 0)",
)


def _tiers(uid: str, title: str, group: str, limits: dict[str, tuple[float, str]], **spec) -> list[RuleSpec]:
    """The warning and critical tier of one signal: the same query, each tier its own limit and window."""
    op = spec.pop("op", "gt")
    return [
        RuleSpec(
            f"{uid}-{severity}", f"{title} ({severity})", group, severity, threshold=(op, limit), for_=window, **spec
        )
        for severity, (limit, window) in limits.items()
    ]


def rules() -> list[RuleSpec]:
    floor = float(MARGIN_FLOOR_PCT)
    deep, deep_minutes = ALARM_DEFAULTS["queue_deep_jobs"], ALARM_DEFAULTS["queue_deep_minutes"]
    error_pct = ALARM_DEFAULTS["error_rate_alarm_percent"]
    specs = [
        RuleSpec(
            f"bp-cost-anomaly-{severity}",
            f"Daily AI cost anomaly ({severity})",
            "economics",
            severity,
            _economics(
                "ai_anomaly",
                ["value"],
                [("signal", "cost"), ("severity", severity)],
                ('group(columns: ["dimension"])', "last()"),
            ),
            "last",
            ("gt", 0),
            "10m",
            36 * 3600,
            f"AI cost of {{{{ $labels.dimension }}}} was {VALUE} USD yesterday, "
            f"{severity} above its same-weekday baseline",
            "Open the AI economics dashboard for that feature or model, then the day's ai_anomalies row "
            "(value, baseline); check the release that shipped that day and the model's prices.",
        )
        for severity in SEVERITIES
    ]
    specs += _tiers(
        "bp-tokens-per-minute-spike",
        "Tokens per minute spike",
        "economics",
        {"warning": (2.0, "10m"), "critical": (4.0, "10m")},
        query=_economics(
            "ai_usage",
            ["peak_tokens_per_minute"],
            preamble=PEAK_BASELINE,
            then=("last()", "map(fn: (r) => ({r with _value: float(v: r._value) / float(v: baseline._value)}))"),
        ),
        reducer="last",
        window_s=29 * 86400,
        summary=f"Peak tokens per minute yesterday was {VALUE} times its 28-day mean",
        runbook="Find the feature and model with the peak on the AI economics dashboard; a runaway client or "
        "agent loop shows as one feature's tokens. Rate-limit it before the provider does.",
    )
    specs += _tiers(
        "bp-margin-under-floor",
        "Margin under the floor",
        "economics",
        {"warning": (floor, "10m"), "critical": (0.0, "10m")},
        op="lt",
        query=_economics("ai_margin", ["margin_pct"], [("plan", ALL_PLANS)]),
        reducer="last",
        window_s=36 * 3600,
        summary=f"Margin over all plans was {VALUE} % yesterday (floor {MARGIN_FLOOR_PCT} %; under 0: losing money)",
        runbook="Compare revenue and cost per plan on the AI economics dashboard; a cost jump without a revenue "
        "jump points at a model or a feature (see the cost anomalies), a revenue drop at payments.",
    )
    specs += _tiers(
        "bp-failed-payments",
        "Failed payments",
        "economics",
        {"warning": (0, "10m"), "critical": (10, "10m")},
        query=_economics("ai_payment", ["failed_payments"], then=('group(columns: ["plan"])', "sum()")),
        reducer="last",
        window_s=36 * 3600,
        summary=f"{VALUE} payment(s) failed yesterday on plan {{{{ $labels.plan }}}}",
        runbook="Check the payment provider's dashboard for that day's declines; many at once means the "
        "integration, not the cards.",
    )
    specs += [
        RuleSpec(
            "bp-economics-late-critical",
            "Economics not published (critical)",
            "pipeline",
            "critical",
            _economics("ai_usage", ["requests"], then=("count()",), start="-54h"),
            "last",
            ("lt", 1),
            "15m",
            54 * 3600,
            "No day of AI economics was published in the last 54 hours: yesterday's numbers are missing",
            f"Open {ECONOMICS_DAG} in Airflow: a failed or queued run for yesterday says why (the gate's paragraph, "
            "a ledger connection); clear it once fixed: the day is replaced, never doubled.",
            no_data="Alerting",
        ),
        RuleSpec(
            "bp-economics-failed-critical",
            "Economics run failed (critical)",
            "pipeline",
            "critical",
            Flux(
                TELEMETRY_BUCKET,
                "airflow_dagrun_duration_failed",
                ["count"],
                [("dag_id", ECONOMICS_DAG)],
                ('group(columns: ["dag_id"])', "sum()"),
                start="-24h",
                stop="now()",
            ),
            "last",
            ("gt", 0),
            "5m",
            24 * 3600,
            f"{VALUE} run(s) of {ECONOMICS_DAG} failed in the last 24 hours",
            f"Read the failed task's log in Airflow ({ECONOMICS_DAG}); nothing was published for that day.",
        ),
        RuleSpec(
            "bp-scheduler-down-critical",
            "No scheduler heartbeat (critical)",
            "pipeline",
            "critical",
            Flux(
                TELEMETRY_BUCKET, "airflow_scheduler_heartbeat", ["value"], then=("sum()",), start="-5m", stop="now()"
            ),
            "last",
            ("lt", 1),
            "5m",
            300,
            "No Airflow scheduler heartbeat for 5 minutes: nothing is being scheduled",
            "Check the scheduler containers (docker compose ps airflow-scheduler) and their log; restart them.",
            no_data="Alerting",
        ),
    ]
    specs += _tiers(
        "bp-fleet-error-rate",
        "Fleet error rate",
        "fleets",
        {"warning": (error_pct / 4, "10m"), "critical": (error_pct, "5m")},
        query=_fleet([cloudwatch_field("ErrorRate", "average")], (GROUP_BY_FLEET, "mean()"), "-10m"),
        reducer="last",
        window_s=600,
        summary=f"ErrorRate of {FLEET} is {VALUE} %",
        runbook="Check the last rollout or AMI promotion on the GPU fleets dashboard (annotations); roll back "
        "with gpu_bundle_rollback if it started with one, else read the workers' logs.",
    )
    specs += _tiers(
        "bp-queue-deep",
        "Queue deep",
        "fleets",
        {"warning": (deep, f"{deep_minutes}m"), "critical": (deep * 5, "15m")},
        op="gte",
        query=_fleet([cloudwatch_field("QueueDepth", "maximum")], (GROUP_BY_FLEET, "max()"), "-10m"),
        reducer="last",
        window_s=600,
        summary=f"QueueDepth of {FLEET} is {VALUE} jobs",
        runbook="Is the fleet at its max_size (gpu_fleet_provision desired_config) or failing to launch Spot "
        "capacity? Raise max_size or add instance types; see the ASG's activity history.",
    )
    busy, queued = cloudwatch_field("ActiveWorkers", "average"), cloudwatch_field("QueueDepth", "maximum")
    specs += _tiers(
        "bp-fleet-leak",
        "Workers with an empty queue",
        "fleets",
        {"warning": (0, "1h"), "critical": (0, "3h")},
        query=_fleet(
            [busy, queued],
            (
                'pivot(rowKey: ["_time", "stage", "fleet_slug"], columnKey: ["_field"], valueColumn: "_value")',
                f"map(fn: (r) => ({{_time: r._time, stage: r.stage, fleet_slug: r.fleet_slug, "
                f"_value: if r.{busy} > 0.0 and r.{queued} == 0.0 then 1.0 else 0.0}}))",
                GROUP_BY_FLEET,
                "min()",
            ),
            "-30m",
        ),
        reducer="last",
        window_s=1800,
        summary=f"{FLEET} keeps workers running with nothing queued (every sample of the last 30 minutes)",
        runbook="The scale-to-zero path (queue-empty alarm, SNS, Lambda) did not act: check the alarm's state "
        "and the Lambda's log; gpu_fleet_guardrails can scale the fleet to 0.",
    )
    return specs


def build_rule(spec: RuleSpec):
    """The SDK rule: the query (A), reduced to one number per series (V), the threshold (T).
    Economics and pipeline rules are production's; a fleet rule's stage is its series'."""
    stage = {} if spec.group == "fleets" else {"stage": "production"}
    op, limit = spec.threshold
    reduce = expr.TypeReduce().ref_id("V").datasource(EXPRESSIONS).expression("A").reducer(spec.reducer)
    threshold = (
        expr.TypeThreshold()
        .ref_id("T")
        .datasource(EXPRESSIONS)
        .expression("V")
        .conditions(
            [
                expr.ExprTypeThresholdConditions().evaluator(
                    expr.ExprTypeThresholdConditionsEvaluator().type(op).params([limit])
                )
            ]
        )
    )
    window = RelativeTimeRange(from_val=spec.window_s, to=0)
    return (
        alerting.Rule(spec.title)
        .uid(spec.uid)
        .condition("T")
        .for_val(spec.for_)
        .no_data_state(spec.no_data)
        .exec_err_state("Error")
        .labels({"severity": spec.severity, "team": "platform", **stage})
        .annotations({"summary": spec.summary, "runbook": spec.runbook})
        .with_query(
            alerting.Query("A").datasource_uid(DATASOURCE_UID).relative_time_range(window).model(FluxTarget(spec.query))
        )
        .with_query(alerting.Query("V").datasource_uid(EXPRESSIONS.uid).model(reduce))
        .with_query(alerting.Query("T").datasource_uid(EXPRESSIONS.uid).model(threshold))
    )


def _plain(built) -> dict:
    return json.loads(json.dumps(built, cls=JSONEncoder))


#: The keys a provisioning file's rule has (the HTTP API's rule has folderUID, ruleGroup, orgID too).
FILE_RULE_KEYS = ("uid", "title", "condition", "data", "noDataState", "execErrState", "for", "annotations", "labels")


def rules_file() -> dict:
    groups: dict[str, list[dict]] = {}
    for spec in rules():
        built = _plain(build_rule(spec).build())
        groups.setdefault(spec.group, []).append({key: built[key] for key in FILE_RULE_KEYS})
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": name, "folder": FOLDER, "interval": GROUP_INTERVALS[name], "rules": members}
            for name, members in groups.items()
        ],
    }


def receiver_name(stage: str, severity: str) -> str:
    return f"bp-{stage}-{severity}"


def contact_points_file() -> dict:
    """A contact point per stage and severity, each publishing to the stage's SNS topic
    (the account and region come from Grafana's environment: ``$AWS_ACCOUNT_ID``, ``$AWS_REGION``)."""
    points = []
    for stage in platform.STAGES:
        topic = DEFAULT_TOPIC.format(stage=stage)
        for severity in SEVERITIES:
            name = receiver_name(stage, severity)
            built = _plain(
                alerting.ContactPoint()
                .uid(name)
                .name(name)
                .type("sns")  # type: ignore[arg-type]  # Grafana's SNS integration; the SDK's list predates it
                .settings(
                    {
                        "topic_arn": f"arn:aws:sns:$AWS_REGION:$AWS_ACCOUNT_ID:{topic}",
                        "sigv4": {"region": "$AWS_REGION"},
                        "subject": f"[{severity.upper()}] {{{{ .CommonLabels.alertname }}}}",
                        "message": '{{ template "default.message" . }}',
                        "attributes": {"severity": severity, "stage": stage},
                    }
                )
                .build()
            )
            receiver = {"uid": built["uid"], "type": built["type"], "settings": built["settings"]}
            points.append({"orgId": 1, "name": built["name"], "receivers": [receiver]})
    return {"apiVersion": 1, "contactPoints": points}


def _matchers(policy: dict) -> dict:
    """The SDK's matcher objects as a provisioning file writes them: ``[name, op, value]``."""
    if "object_matchers" in policy:
        policy["object_matchers"] = [[m["Name"], m["Type"], m["Value"]] for m in policy["object_matchers"]]
    policy["routes"] = [_matchers(route) for route in policy.get("routes", [])]
    return policy


def _match(name: str, value: str) -> alerting.Matcher:
    from grafana_foundation_sdk.models.alerting import MatchType

    return alerting.Matcher().name(name).type(MatchType.EQUAL).value(value).build()


def policies_file() -> dict:
    """Alerts go by stage, then severity: critical at once and every hour until resolved,
    warning batched for 5 minutes and repeated twice a day."""
    stage_routes = []
    for stage in platform.STAGES:
        critical = (
            alerting.NotificationPolicy()
            .receiver(receiver_name(stage, "critical"))
            .object_matchers([_match("severity", "critical")])
            .group_wait("0s")
            .repeat_interval("1h")
        )
        stage_routes.append(
            alerting.NotificationPolicy()
            .receiver(receiver_name(stage, "warning"))
            .object_matchers([_match("stage", stage)])
            .group_wait("5m")
            .repeat_interval("12h")
            .routes([critical])
        )
    root = (
        alerting.NotificationPolicy()
        .receiver(receiver_name("production", "warning"))
        .group_by(["grafana_folder", "alertname", "stage"])
        .routes(stage_routes)
        .build()
    )
    return {"apiVersion": 1, "policies": [{"orgId": 1, **_matchers(_plain(root))}]}
