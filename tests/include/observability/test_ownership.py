"""The owner matrix and the maintenance windows, and the Grafana routing built from them:
an alert reaches the same topics from Grafana as from the Airflow notifier."""

import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from include.alerts import DEFAULT_TOPIC
from include.naming import platform
from include.observability import ownership
from include.observability.ownership import MuteTiming, muted_by, owner_of, team_of_subject

ALERTING = Path(__file__).resolve().parents[3] / "infra" / "grafana" / "provisioning" / "alerting"
TUESDAY = datetime(2026, 12, 8, tzinfo=UTC)


def test_the_first_entry_that_owns_an_alert_is_its_owner():
    assert owner_of({"feature": "image-gen", "release": "2026.11.2"}).name == "creative-ai"
    assert owner_of({"feature": "chat"}).name == "assistant"
    assert owner_of({"feature": "new-feature"}).name == "platform"  # no entry lists it
    assert owner_of({"model": "gpt-4.1"}).name == "ml-platform"
    assert owner_of({"provider": "openai", "model": "gpt-4.1"}).name == "finops"  # a bill's drift
    assert owner_of({"devnode": "alice-1", "owner": "alice"}).name == "gpu-fleet"
    assert owner_of({"plan": "all"}).name == "growth"
    assert owner_of({"fleet": "gpu-default", "plan": ""}).name == "gpu-fleet"  # an empty value owns nothing
    assert owner_of({"stage": "production", "hotspot": "nat_data_processing"}).name == "finops"
    assert owner_of({}).name == ownership.DEFAULT_TEAM
    assert (team_of_subject("fleet").name, team_of_subject("feature").name, team_of_subject(None).name) == (
        "gpu-fleet",
        "platform",  # features are owned name by name: their rules route by series
        "platform",
    )


def test_a_team_escalates_a_critical_alert_to_its_pager():
    team = ownership.TEAMS["growth"]
    assert team.topics("warning", "production") == ["bp-team-growth-production"]
    assert team.topics("critical", "production") == ["bp-team-growth-production", "bp-team-growth-pager-production"]


@pytest.mark.parametrize(
    ("at", "team", "severity", "muted"),
    [
        (TUESDAY + timedelta(hours=1, minutes=59), "gpu-fleet", "warning", False),
        (TUESDAY + timedelta(hours=2), "gpu-fleet", "warning", True),
        (TUESDAY + timedelta(hours=3, minutes=59), "gpu-fleet", "warning", True),
        (TUESDAY + timedelta(hours=4), "gpu-fleet", "warning", False),  # the end is outside
        (TUESDAY + timedelta(days=1, hours=3), "gpu-fleet", "warning", False),  # a Wednesday
        (TUESDAY + timedelta(hours=3), "gpu-fleet", "critical", False),  # critical still pages
        (TUESDAY + timedelta(hours=3), "growth", "warning", False),  # another team
        # 04:30 in UTC+2 is 02:30 UTC
        (datetime(2026, 12, 8, 4, 30, tzinfo=timezone(timedelta(hours=2))), "gpu-fleet", "warning", True),
    ],
)
def test_the_maintenance_window_mutes_its_team_s_warnings_in_utc(at, team, severity, muted):
    assert (muted_by(team, severity, at) is not None) is muted


def test_a_mute_timing_refuses_what_it_does_not_know_and_a_naive_time():
    with pytest.raises(ValueError, match="unknown"):
        MuteTiming("x", ("nobody",), ("warning",), ("tuesday",), "02:00", "04:00", "why")
    with pytest.raises(ValueError, match="empty window"):
        MuteTiming("x", ("growth",), ("warning",), ("tuesday",), "04:00", "02:00", "why")
    with pytest.raises(ValueError, match="aware"):
        ownership.MUTE_TIMINGS[0].mutes("gpu-fleet", "warning", datetime(2026, 12, 8, 3))


# --- Grafana: the generated policies route as the notifier does --------------------------


def _load(name: str) -> dict:
    return yaml.safe_load((ALERTING / name).read_text())


def _matches(matcher: list[str], labels: dict[str, str]) -> bool:
    name, op, value = matcher
    found = labels.get(name, "")
    # Alertmanager anchors its regular expressions
    return found == value if op == "=" else re.fullmatch(value, found) is not None


def _route(policy: dict, labels: dict[str, str]) -> dict:
    """Where Grafana delivers an alert: the deepest route whose matchers hold, first child first."""
    for child in policy.get("routes", []):
        if all(_matches(m, labels) for m in child.get("object_matchers", [])):
            return _route(child, labels)
    return policy


@pytest.mark.parametrize(
    ("labels", "dimensions"),
    [
        ({"team": "platform", "dimension": "feature:image-gen"}, {"feature": "image-gen"}),
        ({"team": "platform", "dimension": "feature:search"}, {"feature": "search"}),
        ({"team": "platform", "dimension": "feature:brand-new"}, {"feature": "brand-new"}),
        ({"team": "platform", "dimension": "model:gpt-4.1"}, {"model": "gpt-4.1"}),
        ({"team": "gpu-fleet", "fleet_slug": "gpu-default"}, {"fleet": "gpu-default"}),
        ({"team": "growth", "plan": "pro"}, {"plan": "pro"}),
        ({"team": "platform"}, {}),
    ],
)
@pytest.mark.parametrize("severity", ["warning", "critical"])
@pytest.mark.parametrize("stage", platform.STAGES)
def test_grafana_delivers_an_alert_to_the_topics_the_notifier_publishes_to(labels, dimensions, severity, stage):
    [root] = _load("policies.yaml")["policies"]
    points = {point["name"]: point for point in _load("contact-points.yaml")["contactPoints"]}
    route = _route(root, {**labels, "stage": stage, "severity": severity})

    topics = [r["settings"]["topic_arn"].rsplit(":", 1)[-1] for r in points[route["receiver"]]["receivers"]]
    owner = owner_of(dimensions)
    assert topics == [DEFAULT_TOPIC.format(stage=stage), *owner.topics(severity, stage)]
    windows = [t.name for t in ownership.MUTE_TIMINGS if owner.name in t.teams and severity in t.severities]
    assert route.get("mute_time_intervals", []) == windows


def test_every_rule_names_a_known_team_and_every_mute_timing_is_provisioned():
    rules = [rule for group in _load("rules.yaml")["groups"] for rule in group["rules"]]
    teams = {rule["uid"]: rule["labels"]["team"] for rule in rules}
    assert set(teams.values()) <= set(ownership.TEAMS)
    assert teams["bp-queue-deep-warning"] == "gpu-fleet"
    assert teams["bp-renewal-failures-critical"] == "growth"
    [timing] = _load("mute-timings.yaml")["muteTimes"]
    assert timing["time_intervals"] == [
        {"times": [{"start_time": "02:00", "end_time": "04:00"}], "weekdays": ["tuesday"], "location": "UTC"}
    ]
