"""The one alert notifier: task log always, SNS topics by owner and severity."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import BaseNotifier
from airflow.sdk.exceptions import AirflowException
from botocore.exceptions import BotoCoreError, ClientError

from include.alerts import DEFAULT_REPORT_TOPIC, DEFAULT_TOPIC, SNS_SUBJECT_LIMIT, Alert, topics_for
from include.observability import ownership

log = logging.getLogger(__name__)


def run_link(context: Any) -> str | None:
    """The UI page of the run (and task) the context belongs to."""
    dag_run = context.get("dag_run")
    if dag_run is None:
        return None
    base = conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")
    link = f"{base}/dags/{dag_run.dag_id}/runs/{dag_run.run_id}"
    ti = context.get("ti")
    return f"{link}/tasks/{ti.task_id}" if ti is not None else link


def alert_topic_names(severity: str, stage: str) -> list[str]:
    """The SNS topics an alert of ``severity`` goes to (``[bp] alert_topic`` and
    ``alert_routes``); the fleet stacks' alarms notify the same ones."""
    return topics_for(
        severity,
        stage,
        topic_template=conf.get("bp", "alert_topic", fallback=DEFAULT_TOPIC),
        routes_json=conf.get("bp", "alert_routes", fallback=""),
    )


def muting(alert: Alert, at: datetime | None = None) -> ownership.MuteTiming | None:
    """The maintenance window that holds ``alert`` back now (or ``at``), if any: its owner's
    (:func:`include.observability.ownership.owner_of`) mute timings for its severity. A
    deployment without maintenance windows sets ``[bp] honour_mute_timings = False``."""
    if not conf.getboolean("bp", "honour_mute_timings", fallback=True):
        return None
    team = ownership.owner_of(alert.dimensions)
    return ownership.muted_by(team.name, alert.severity, at or datetime.now(UTC))


def send_alert(
    alert: Alert, *, stage: str, aws_conn_id: str | None = "aws_default", at: datetime | None = None
) -> list[str]:
    """Log the alert and publish it to the stage's stream and its owner's topics (the
    owner matrix of :mod:`include.observability.ownership`, the one Grafana's policies are
    built from), unless its owner's maintenance window mutes it; return the topic ARNs it
    reached."""
    team = ownership.owner_of(alert.dimensions)
    alert = replace(alert, dimensions={**alert.dimensions, "team": team.name})
    muted = muting(alert, at)
    if muted is not None:
        log.warning("ALERT muted by %s (%s), published nowhere: %s", muted.name, muted.why, alert.text())
        return []
    level = logging.ERROR if alert.severity == "critical" else logging.WARNING
    log.log(level, "ALERT %s", alert.text())
    names = list(dict.fromkeys([*alert_topic_names(alert.severity, stage), *team.topics(alert.severity, stage)]))
    return _publish(names, alert.text(), alert.subject, alert.attributes(), aws_conn_id, what="alert")


def send_notice(subject: str, message: str, *, aws_conn_id: str | None = "aws_default") -> list[str]:
    """Publish a report's notice (not an alert: nothing is wrong) to the ``[bp] report_topic``
    topic, default ``bp-reports``; return the topic ARNs it reached. Never raises."""
    log.info("NOTICE %s\n%s", subject, message)
    topic = conf.get("bp", "report_topic", fallback=DEFAULT_REPORT_TOPIC)
    return _publish([topic], message, subject[:SNS_SUBJECT_LIMIT], {}, aws_conn_id, what="notice")


def _publish(
    names: Sequence[str], message: str, subject: str, attributes: dict, aws_conn_id: str | None, *, what: str
) -> list[str]:
    """Publish to each existing topic of ``names``. A topic that does not exist or a failed
    publish is logged, never raised: a notification must not turn a warning into a crash,
    nor hide the original failure."""
    reached = []
    try:
        # imported here: DAG files build notifiers at parse time, which must stay cheap
        from airflow.providers.amazon.aws.hooks.sns import SnsHook

        hook = SnsHook(aws_conn_id=aws_conn_id)
        existing = {
            arn.rsplit(":", 1)[-1]: arn
            for page in hook.conn.get_paginator("list_topics").paginate()
            for arn in (topic["TopicArn"] for topic in page["Topics"])
        }
        for name in names:
            arn = existing.get(name)
            if arn is None:
                log.error("Topic %s does not exist: the %s did not reach it", name, what)
                continue
            hook.publish_to_target(target_arn=arn, message=message, subject=subject, message_attributes=attributes)
            reached.append(arn)
    except (ClientError, BotoCoreError, AirflowException) as error:  # AWS said no, or no connection
        log.error("Could not publish the %s to SNS (%s): it is only in this log", what, error)
    return reached


class OpsAlertNotifier(BaseNotifier):
    """Send an :class:`~include.alerts.Alert` built from the task context.

    Use as ``on_failure_callback=OpsAlertNotifier(severity="critical", title=...)``;
    the failing exception becomes the alert's detail and the run's UI page its link.

    :param severity: ``warning`` or ``critical``.
    :param title: what happened, in a few words. (templated)
    :param stage: the fleet stage whose topics receive it. (templated)
    :param metric: metric name. (templated)
    :param value: observed value. (templated)
    :param threshold: the threshold it crossed. (templated)
    :param dimensions: fleet, feature, model, plan, release... (templated)
    :param not_incidents: exception types that end a task without being an incident (bad
        input refused before anything changed): logged, not published.
    """

    template_fields: Sequence[str] = ("title", "stage", "metric", "value", "threshold", "dimensions")

    def __init__(
        self,
        *,
        severity: str,
        title: str,
        stage: str = "staging",
        metric: str | None = None,
        value: Any = None,
        threshold: Any = None,
        dimensions: dict[str, str] | None = None,
        aws_conn_id: str | None = "aws_default",
        not_incidents: tuple[type[BaseException], ...] = (),
    ) -> None:
        super().__init__()
        Alert(severity=severity, title=title)  # fail at DAG parse on a bad severity, not at alert time
        self.severity = severity
        self.title = title
        self.stage = stage
        self.metric = metric
        self.value = value
        self.threshold = threshold
        self.dimensions = dimensions or {}
        self.aws_conn_id = aws_conn_id
        self.not_incidents = not_incidents

    def notify(self, context: Any) -> None:
        exception = context.get("exception")
        if isinstance(exception, self.not_incidents):
            log.info("Not an incident, no alert: %s", exception)
            return
        alert = Alert(
            severity=self.severity,
            title=self.title,
            metric=self.metric,
            value=self.value,
            threshold=self.threshold,
            dimensions=self.dimensions,
            link=run_link(context),
            detail=f"{type(exception).__name__}: {exception}" if exception else None,
        )
        send_alert(alert, stage=self.stage, aws_conn_id=self.aws_conn_id)
