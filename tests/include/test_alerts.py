import pytest

from include.alerts import Alert, topics_for


def test_the_text_carries_metric_threshold_dimensions_and_link():
    alert = Alert(
        severity="critical",
        title="Token burn anomaly",
        metric="tokens_per_minute",
        value=182000,
        threshold=90000,
        dimensions={"release": "2026.11.3", "model": "gpt-5", "feature": "video-effects"},
        link="http://airflow/dags/ai_economics_daily/runs/r1",
    )

    assert alert.text().splitlines() == [
        "[CRITICAL] Token burn anomaly",
        "tokens_per_minute = 182000 (threshold 90000)",
        "feature=video-effects, model=gpt-5, release=2026.11.3",
        "http://airflow/dags/ai_economics_daily/runs/r1",
    ]
    assert alert.attributes() == {
        "severity": "critical",
        "release": "2026.11.3",
        "model": "gpt-5",
        "feature": "video-effects",
    }


def test_the_subject_fits_sns_limits():
    subject = Alert(severity="warning", title="x" * 200 + "\nsecond line").subject

    assert len(subject) == 100
    assert "\n" not in subject


def test_an_unknown_severity_is_refused():
    with pytest.raises(ValueError, match="severity must be one of warning, critical, not 'page'"):
        Alert(severity="page", title="x")


def test_routing_by_severity_is_configuration():
    routes = '{"critical": ["bp-ops-pager-{stage}", "bp-ops-alerts-{stage}"]}'

    assert topics_for("warning", "production", routes_json=routes) == ["bp-ops-alerts-production"]
    assert topics_for("critical", "production", routes_json=routes) == [
        "bp-ops-alerts-production",
        "bp-ops-pager-production",
    ]
    assert topics_for("critical", "staging", topic_template="ops-{stage}") == ["ops-staging"]
    with pytest.raises(ValueError, match="unknown severities: urgent"):
        topics_for("critical", "staging", routes_json='{"urgent": ["x"]}')
