import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bp_aws.notifiers.ops_alert import OpsAlertNotifier
from include.alerts import Alert


@pytest.fixture
def topics(aws_http, monkeypatch):
    """The staging ops and pager topics, each with an SQS queue subscribed to read what arrives."""
    monkeypatch.setenv("AIRFLOW__BP__ALERT_ROUTES", '{"critical": ["bp-ops-pager-{stage}"]}')
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example")
    return _inboxes(aws_http, "bp-ops-alerts-staging", "bp-ops-pager-staging")


def _inboxes(aws_http, *names: str) -> dict[str, str]:
    """Each topic of ``names`` with an SQS queue subscribed: topic name -> queue URL."""
    sns, sqs = aws_http("sns"), aws_http("sqs")
    queues = {}
    for name in names:
        topic = sns.create_topic(Name=name)["TopicArn"]
        queue_url = sqs.create_queue(QueueName=f"{name}-inbox")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        queues[name] = queue_url
    return queues


def _received(aws_http, queue_url):
    messages = aws_http("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def _context(error):
    return {
        "dag_run": SimpleNamespace(dag_id="gpu_bundle_rollout", run_id="manual__1"),
        "ti": SimpleNamespace(task_id="move_pointer", try_number=1),
        "exception": error,
    }


def test_a_critical_failure_reaches_both_topics_with_its_context(aws_http, topics, caplog):
    notifier = OpsAlertNotifier(
        severity="critical",
        title="Bundle rollout failed on {{ params.fleet }}",
        dimensions={"fleet": "gpu-default"},
    )
    context = {**_context(RuntimeError("instance refresh Failed")), "params": {"fleet": "gpu-default"}}

    notifier(context)

    for queue in topics.values():
        [message] = _received(aws_http, queue)
        assert message["Subject"] == "[CRITICAL] Bundle rollout failed on gpu-default"
        assert message["Message"].splitlines()[1:] == [
            "fleet=gpu-default, team=gpu-fleet",
            "RuntimeError: instance refresh Failed",
            "http://airflow.example/dags/gpu_bundle_rollout/runs/manual__1/tasks/move_pointer",
        ]
        assert message["MessageAttributes"]["severity"]["Value"] == "critical"
        assert message["MessageAttributes"]["team"]["Value"] == "gpu-fleet"
    assert "ALERT [CRITICAL] Bundle rollout failed on gpu-default" in caplog.text


def test_a_warning_goes_only_to_the_ops_topic(aws_http, topics):
    OpsAlertNotifier(severity="warning", title="Margin below floor", metric="margin_pct", value=12, threshold=20)(
        _context(None)
    )

    [message] = _received(aws_http, topics["bp-ops-alerts-staging"])
    assert "margin_pct = 12 (threshold 20)" in message["Message"]
    assert _received(aws_http, topics["bp-ops-pager-staging"]) == []


def test_a_missing_topic_is_logged_and_never_raises(aws_http, baseline, caplog):
    from bp_aws.notifiers.ops_alert import send_alert

    reached = send_alert(Alert(severity="critical", title="x"), stage="production")

    assert reached == []
    assert "Topic bp-ops-alerts-production does not exist: the alert did not reach it" in caplog.text


def test_a_bad_severity_fails_when_the_dag_is_parsed():
    with pytest.raises(ValueError, match="severity must be one of"):
        OpsAlertNotifier(severity="sev1", title="x")


@pytest.fixture
def team_inboxes(aws_http, topics):
    """The growth team's topic and pager in staging, beside the ops topics."""
    return topics | _inboxes(aws_http, "bp-team-growth-staging", "bp-team-growth-pager-staging")


def test_an_alert_reaches_its_owner_s_topic_and_a_critical_one_its_pager(aws_http, team_inboxes):
    from bp_aws.notifiers.ops_alert import send_alert

    send_alert(Alert(severity="warning", title="Margin below floor", dimensions={"plan": "pro"}), stage="staging")
    send_alert(Alert(severity="critical", title="Renewals failing", dimensions={"plan": "all"}), stage="staging")

    subjects = {name: [m["Subject"] for m in _received(aws_http, queue)] for name, queue in team_inboxes.items()}
    assert subjects == {
        "bp-ops-alerts-staging": ["[WARNING] Margin below floor", "[CRITICAL] Renewals failing"],
        "bp-ops-pager-staging": ["[CRITICAL] Renewals failing"],  # [bp] alert_routes, as before
        "bp-team-growth-staging": ["[WARNING] Margin below floor", "[CRITICAL] Renewals failing"],
        "bp-team-growth-pager-staging": ["[CRITICAL] Renewals failing"],
    }


def test_the_owner_s_maintenance_window_mutes_a_warning_not_a_critical(aws_http, topics, caplog):
    from bp_aws.notifiers.ops_alert import send_alert

    window = datetime(2026, 12, 8, 2, 30, tzinfo=UTC)  # a Tuesday: bp-gpu-maintenance
    fleet = {"fleet": "gpu-default"}
    assert send_alert(Alert(severity="warning", title="Queue deep", dimensions=fleet), stage="staging", at=window) == []
    assert "ALERT muted by bp-gpu-maintenance" in caplog.text
    send_alert(Alert(severity="critical", title="Fleet failing", dimensions=fleet), stage="staging", at=window)
    send_alert(
        Alert(severity="warning", title="Queue deep", dimensions=fleet), stage="staging", at=window.replace(hour=5)
    )

    subjects = [m["Subject"] for m in _received(aws_http, topics["bp-ops-alerts-staging"])]
    assert subjects == ["[CRITICAL] Fleet failing", "[WARNING] Queue deep"]


def test_a_deployment_without_maintenance_windows_turns_them_off(aws_http, topics, monkeypatch):
    from bp_aws.notifiers.ops_alert import muting

    alert = Alert(severity="warning", title="Queue deep", dimensions={"fleet": "gpu-default"})
    window = datetime(2026, 12, 8, 2, 30, tzinfo=UTC)
    assert muting(alert, window).name == "bp-gpu-maintenance"
    monkeypatch.setenv("AIRFLOW__BP__HONOUR_MUTE_TIMINGS", "False")
    assert muting(alert, window) is None
