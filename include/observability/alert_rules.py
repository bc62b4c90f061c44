"""Grafana-managed alert rules, contact points and notification policies, built with the
Foundation SDK's alerting builders and written as Grafana provisioning files
(``infra/grafana/provisioning/alerting/``).

Seed 000's alerting principles, as rules: actionable signals only; a warning and a
critical tier; sustained windows (every rule holds its condition for a while before it
fires, ``for``); context in the notification (the metric, its value, the threshold, the
fleet, feature or model from the series' labels) and a runbook line saying what to do.
Alerts route by ``stage``, then by owner (:mod:`.ownership`: the team a rule's ``team``
label or an anomaly's feature or model names), then by ``severity``, to the stage's stream
(``bp-ops-alerts-<stage>``) and the owner's SNS topics (the topics the Airflow notifier
publishes to), critical ones without delay, each owner's routes with its mute timings.
"""

from __future__ import annotations

import json
import re

from grafana_foundation_sdk.builders import alerting, expr
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.alerting import RelativeTimeRange
from grafana_foundation_sdk.models.dashboard import DataSourceRef

from include.alerts import DEFAULT_TOPIC, SEVERITIES
from include.fleets.config import ALARM_DEFAULTS
from include.naming import platform
from include.observability import ownership
from include.observability.catalogue import TELEMETRY_BUCKET, cloudwatch_field
from include.observability.economics_rules import economics_rules
from include.observability.flux import DATASOURCE_UID, Flux, FluxTarget
from include.observability.rule_spec import (
    ECONOMICS_DAG,
    FLEET,
    GROUP_BY_FLEET,
    VALUE,
    RuleSpec,
    economics_query,
    fleet_query,
    tiers,
)

FOLDER = "BP alerts"
EXPRESSIONS = DataSourceRef(type_val="__expr__", uid="__expr__")
#: How often each group is evaluated: the daily economics need not be read every minute.
GROUP_INTERVALS = {"economics": "5m", "fleets": "1m", "pipeline": "1m"}
#: The owner dimensions an anomaly's series label ``dimension`` names (``feature:<name>``).
ANOMALY_DIMENSIONS = ("feature", "model")


def rules() -> list[RuleSpec]:
    deep, deep_minutes = ALARM_DEFAULTS["queue_deep_jobs"], ALARM_DEFAULTS["queue_deep_minutes"]
    error_pct = ALARM_DEFAULTS["error_rate_alarm_percent"]
    specs = economics_rules()
    specs += [
        RuleSpec(
            "bp-economics-late-critical",
            "Economics not published (critical)",
            "pipeline",
            "critical",
            economics_query("ai_usage", ["requests"], then=("count()",), start="-54h"),
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
    specs += tiers(
        "bp-fleet-error-rate",
        "Fleet error rate",
        "fleets",
        {"warning": (error_pct / 4, "10m"), "critical": (error_pct, "5m")},
        query=fleet_query([cloudwatch_field("ErrorRate", "average")], (GROUP_BY_FLEET, "mean()"), "-10m"),
        subject="fleet",
        reducer="last",
        window_s=600,
        summary=f"ErrorRate of {FLEET} is {VALUE} %",
        runbook="Check the last rollout or AMI promotion on the GPU fleets dashboard (annotations); roll back "
        "with gpu_bundle_rollback if it started with one, else read the workers' logs.",
    )
    specs += tiers(
        "bp-queue-deep",
        "Queue deep",
        "fleets",
        {"warning": (deep, f"{deep_minutes}m"), "critical": (deep * 5, "15m")},
        op="gte",
        query=fleet_query([cloudwatch_field("QueueDepth", "maximum")], (GROUP_BY_FLEET, "max()"), "-10m"),
        subject="fleet",
        reducer="last",
        window_s=600,
        summary=f"QueueDepth of {FLEET} is {VALUE} jobs",
        runbook="Is the fleet at its max_size (gpu_fleet_provision desired_config) or failing to launch Spot "
        "capacity? Raise max_size or add instance types; see the ASG's activity history.",
    )
    busy, queued = cloudwatch_field("ActiveWorkers", "average"), cloudwatch_field("QueueDepth", "maximum")
    specs += tiers(
        "bp-fleet-leak",
        "Workers with an empty queue",
        "fleets",
        {"warning": (0, "1h"), "critical": (0, "3h")},
        query=fleet_query(
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
        subject="fleet",
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
        .labels({"severity": spec.severity, "team": ownership.team_of_subject(spec.subject).name, **stage})
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


def receiver_name(team: str, stage: str, severity: str) -> str:
    return f"bp-{team}-{stage}-{severity}"


def _sns(uid: str, topic: str, stage: str, severity: str, team: str) -> dict:
    built = _plain(
        alerting.ContactPoint()
        .uid(uid)
        .name(uid)
        .type("sns")  # type: ignore[arg-type]  # Grafana's SNS integration; the SDK's list predates it
        .settings(
            {
                "topic_arn": f"arn:aws:sns:$AWS_REGION:$AWS_ACCOUNT_ID:{topic}",
                "sigv4": {"region": "$AWS_REGION"},
                "subject": f"[{severity.upper()}] {{{{ .CommonLabels.alertname }}}}",
                "message": '{{ template "default.message" . }}',
                "attributes": {"severity": severity, "stage": stage, "team": team},
            }
        )
        .build()
    )
    return {"uid": built["uid"], "type": built["type"], "settings": built["settings"]}


def contact_points_file() -> dict:
    """A contact point per owning team, stage and severity (:mod:`.ownership`): the stage's
    stream topic and the team's topics (its pager too when critical), the same topics the
    Airflow notifier publishes to (the account and region come from Grafana's environment:
    ``$AWS_ACCOUNT_ID``, ``$AWS_REGION``)."""
    points = []
    for team in ownership.TEAMS.values():
        for stage in platform.STAGES:
            for severity in SEVERITIES:
                name = receiver_name(team.name, stage, severity)
                topics = [DEFAULT_TOPIC.format(stage=stage), *team.topics(severity, stage)]
                receivers = [
                    _sns(f"{name}-{number}", topic, stage, severity, team.name)
                    for number, topic in enumerate(topics, start=1)
                ]
                points.append({"orgId": 1, "name": name, "receivers": receivers})
    return {"apiVersion": 1, "contactPoints": points}


def mute_timings_file() -> dict:
    """The maintenance windows (:data:`.ownership.MUTE_TIMINGS`), as Grafana's mute timings."""
    return {
        "apiVersion": 1,
        "muteTimes": [
            {
                "orgId": 1,
                "name": timing.name,
                "time_intervals": [
                    {
                        "times": [{"start_time": timing.start, "end_time": timing.end}],
                        "weekdays": list(timing.weekdays),
                        "location": "UTC",
                    }
                ],
            }
            for timing in ownership.MUTE_TIMINGS
        ],
    }


def _matchers(policy: dict) -> dict:
    """The SDK's matcher objects as a provisioning file writes them: ``[name, op, value]``."""
    if "object_matchers" in policy:
        policy["object_matchers"] = [[m["Name"], m["Type"], m["Value"]] for m in policy["object_matchers"]]
    policy["routes"] = [_matchers(route) for route in policy.get("routes", [])]
    return policy


def _match(name: str, value: str) -> alerting.Matcher:
    from grafana_foundation_sdk.models.alerting import MatchType

    return alerting.Matcher().name(name).type(MatchType.EQUAL).value(value).build()


def _muted(policy: alerting.NotificationPolicy, team: str, severity: str) -> alerting.NotificationPolicy:
    names = [t.name for t in ownership.MUTE_TIMINGS if team in t.teams and severity in t.severities]
    return policy.mute_time_intervals(names) if names else policy


def _owner_route(matcher: alerting.Matcher, team: str, stage: str) -> alerting.NotificationPolicy:
    """One owner's route in a stage: warnings batched for 5 minutes and repeated twice a
    day, critical at once and every hour; each tier with its own mute timings (a route does
    not inherit its parent's)."""
    critical = (
        alerting.NotificationPolicy()
        .receiver(receiver_name(team, stage, "critical"))
        .object_matchers([_match("severity", "critical")])
        .group_wait("0s")
        .repeat_interval("1h")
    )
    warning = (
        alerting.NotificationPolicy()
        .receiver(receiver_name(team, stage, "warning"))
        .object_matchers([matcher])
        .group_wait("5m")
        .repeat_interval("12h")
        .routes([_muted(critical, team, "critical")])
    )
    return _muted(warning, team, "warning")


def _anomaly_matcher(entry: ownership.Ownership) -> alerting.Matcher:
    """An anomaly's series label ``dimension`` (``feature:<name>``) against an owner entry."""
    from grafana_foundation_sdk.models.alerting import MatchType

    names = "|".join(re.escape(value) for value in entry.values) if entry.values else ".+"
    pattern = f"{entry.dimension}:({names})" if entry.values else f"{entry.dimension}:.+"
    return alerting.Matcher().name("dimension").type(MatchType.EQUAL_REGEX).value(pattern).build()


def policies_file() -> dict:
    """Alerts go by stage, then owner: an anomaly by the feature or model of its series
    (label ``dimension``), any other by its rule's ``team`` label; see :func:`_owner_route`."""
    stage_routes = []
    for stage in platform.STAGES:
        by_series = [
            _owner_route(_anomaly_matcher(entry), entry.team, stage)
            for entry in ownership.OWNERS
            if entry.dimension in ANOMALY_DIMENSIONS
        ]
        by_rule = [_owner_route(_match("team", team), team, stage) for team in ownership.TEAMS]
        stage_routes.append(
            alerting.NotificationPolicy()
            .receiver(receiver_name(ownership.DEFAULT_TEAM, stage, "warning"))
            .object_matchers([_match("stage", stage)])
            .routes([*by_series, *by_rule])
        )
    root = (
        alerting.NotificationPolicy()
        .receiver(receiver_name(ownership.DEFAULT_TEAM, "production", "warning"))
        .group_by(["grafana_folder", "alertname", "stage"])
        .routes(stage_routes)
        .build()
    )
    return {"apiVersion": 1, "policies": [{"orgId": 1, **_matchers(_plain(root))}]}
