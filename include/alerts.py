"""Operational alerts: what one says, and where it goes.

Seed 000's alerting rules: actionable signals only, warning and critical thresholds,
and context in every notification (metric, value, threshold, release, feature/model).
Every DAG's failure callback and the economics alerts build an :class:`Alert`; the
notifier in ``bp_aws.notifiers`` logs it and publishes it to SNS.

Routing is configuration, in the Airflow config section ``[bp]``:
``alert_topic`` (default ``bp-ops-alerts-{stage}``) receives every alert;
``alert_routes`` (JSON, e.g. ``{"critical": ["bp-ops-pager-{stage}"]}``) adds topics
per severity.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("warning", "critical")
DEFAULT_TOPIC = "bp-ops-alerts-{stage}"
#: Where reports people read (the weekly review pack) are announced: ``[bp] report_topic``.
DEFAULT_REPORT_TOPIC = "bp-reports"
DIMENSION_ORDER = ("fleet", "feature", "model", "plan", "release")
SNS_SUBJECT_LIMIT = 100


@dataclass(frozen=True)
class Alert:
    severity: str
    title: str
    metric: str | None = None
    value: Any = None
    threshold: Any = None
    dimensions: Mapping[str, str] = field(default_factory=dict)
    link: str | None = None
    detail: str | None = None
    #: what ``threshold`` is: a limit crossed, or the baseline a value is compared with
    threshold_label: str = "threshold"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    @property
    def subject(self) -> str:
        """The SNS subject: at most 100 characters, no line breaks (AWS's limits)."""
        subject = f"[{self.severity.upper()}] {self.title}".replace("\n", " ")
        return subject if len(subject) <= SNS_SUBJECT_LIMIT else subject[: SNS_SUBJECT_LIMIT - 1] + "…"

    def text(self) -> str:
        """The readable message: one fact per line."""
        lines = [self.subject]
        if self.metric is not None:
            comparison = f" ({self.threshold_label} {self.threshold})" if self.threshold is not None else ""
            lines.append(f"{self.metric} = {self.value}{comparison}")
        ordered = sorted(self.dimensions.items(), key=lambda kv: (_rank(kv[0]), kv[0]))
        if ordered:
            lines.append(", ".join(f"{key}={value}" for key, value in ordered))
        if self.detail:
            lines.append(self.detail)
        if self.link:
            lines.append(self.link)
        return "\n".join(lines)

    def attributes(self) -> dict[str, str]:
        """SNS message attributes, so subscriptions can filter by severity or fleet."""
        attributes = {"severity": self.severity}
        attributes.update({key: str(value) for key, value in self.dimensions.items() if value not in (None, "")})
        return attributes


def _rank(key: str) -> int:
    return DIMENSION_ORDER.index(key) if key in DIMENSION_ORDER else len(DIMENSION_ORDER)


def topics_for(severity: str, stage: str, *, topic_template: str = DEFAULT_TOPIC, routes_json: str = "") -> list[str]:
    """SNS topic names an alert of ``severity`` goes to, in order, without repeats."""
    routes: dict[str, list[str]] = json.loads(routes_json) if routes_json.strip() else {}
    unknown = set(routes) - set(SEVERITIES)
    if unknown:
        raise ValueError(f"alert_routes has unknown severities: {', '.join(sorted(unknown))}")
    names = [topic_template, *routes.get(severity, [])]
    return list(dict.fromkeys(name.format(stage=stage) for name in names))
