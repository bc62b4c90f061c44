"""Who owns an alert, where it goes at each severity, and when it is muted (seed 000: an
owner/escalation matrix with severity routing, and suppression windows).

One matrix serves both senders. Grafana's contact points, notification policies and mute
timings are built from it (:mod:`.alert_rules`); the pipeline's own SNS alerts
(``bp_aws.notifiers.ops_alert.send_alert``) go to the owner it names and are held back in
the same windows.

* **Owner**: the first :data:`OWNERS` entry whose dimension the alert carries (with one of
  its values, or any value when it lists none); no entry: :data:`DEFAULT_TEAM`.
* **Where**: every alert goes to the stage's stream (``bp-ops-alerts-<stage>``, the record
  everyone may read) and to its owner's topic ``bp-team-<team>-<stage>``; a critical one
  also to the owner's pager, ``bp-team-<team>-pager-<stage>``.
* **Muted**: during a :data:`MUTE_TIMINGS` window that covers the owner and the severity, an
  alert is logged and published nowhere (Grafana: the owner's route carries the mute
  timing; mute timings are not inherited by child routes, so each route names its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time

from include.alerts import SEVERITIES

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True)
class Team:
    name: str
    owns: str

    def topics(self, severity: str, stage: str) -> list[str]:
        """The team's SNS topics for an alert of ``severity`` in ``stage``."""
        names = [f"bp-team-{self.name}-{stage}"]
        return [*names, f"bp-team-{self.name}-pager-{stage}"] if severity == "critical" else names


TEAMS = {
    team.name: team
    for team in (
        Team("platform", "the pipeline itself, and any alert no other team owns"),
        Team("gpu-fleet", "GPU fleets, images, rollouts and dev nodes"),
        Team("creative-ai", "image and video generation features"),
        Team("assistant", "chat, summaries and search features"),
        Team("ml-platform", "model providers, routing and token budgets"),
        Team("growth", "revenue, renewals, conversion and margin"),
        Team("finops", "the AWS bill"),
    )
}
DEFAULT_TEAM = "platform"


@dataclass(frozen=True)
class Ownership:
    """``team`` owns the alerts carrying ``dimension`` (one of ``values``; any when empty)."""

    dimension: str
    team: str
    values: tuple[str, ...] = ()

    def owns(self, dimensions: Mapping[str, str]) -> bool:
        value = dimensions.get(self.dimension)
        return value not in (None, "") and (not self.values or value in self.values)


#: In order: the first entry that owns an alert is its owner.
OWNERS = (
    Ownership("feature", "creative-ai", ("image-gen", "video-effects")),
    Ownership("feature", "assistant", ("chat", "summarize", "search")),
    Ownership("provider", "finops"),  # a provider's bill against our cost
    Ownership("model", "ml-platform"),
    Ownership("plan", "growth"),
    Ownership("fleet", "gpu-fleet"),
    Ownership("devnode", "gpu-fleet"),
    Ownership("hotspot", "finops"),
)


def owner_of(dimensions: Mapping[str, str]) -> Team:
    """The team owning an alert with these dimensions."""
    return TEAMS[next((entry.team for entry in OWNERS if entry.owns(dimensions)), DEFAULT_TEAM)]


def team_of_subject(dimension: str | None) -> Team:
    """The team owning every alert about ``dimension`` whatever its value (a Grafana rule's
    static ``team`` label): the first entry for it that lists no values."""
    return TEAMS[next((e.team for e in OWNERS if e.dimension == dimension and not e.values), DEFAULT_TEAM)]


@dataclass(frozen=True)
class MuteTiming:
    """A weekly window (UTC) in which ``teams``' alerts of ``severities`` notify nobody."""

    name: str
    teams: tuple[str, ...]
    severities: tuple[str, ...]
    weekdays: tuple[str, ...]
    start: str  # HH:MM, UTC
    end: str  # HH:MM, UTC, after start
    why: str

    def __post_init__(self) -> None:
        unknown = (set(self.teams) - set(TEAMS)) | (set(self.severities) - set(SEVERITIES))
        unknown |= set(self.weekdays) - set(WEEKDAYS)
        if unknown or not time.fromisoformat(self.start) < time.fromisoformat(self.end):
            raise ValueError(f"mute timing {self.name}: unknown {sorted(unknown)} or an empty window")

    def mutes(self, team: str, severity: str, at: datetime) -> bool:
        """Whether an alert of ``team`` and ``severity`` at ``at`` (aware, any zone) is muted."""
        if at.tzinfo is None:
            raise ValueError("a mute timing is judged on an aware datetime")
        utc = at.astimezone(UTC)
        inside = time.fromisoformat(self.start) <= utc.time() < time.fromisoformat(self.end)
        return (
            team in self.teams and severity in self.severities and WEEKDAYS[utc.weekday()] in self.weekdays and inside
        )


MUTE_TIMINGS = (
    MuteTiming(
        "bp-gpu-maintenance",
        teams=("gpu-fleet",),
        severities=("warning",),
        weekdays=("tuesday",),
        start="02:00",
        end="04:00",
        why="the weekly window for AMI bakes and bundle rollouts: fleet warnings (queue depth, scaling, "
        "replaced nodes) are expected then; a critical alert still pages",
    ),
)


def muted_by(team: str, severity: str, at: datetime) -> MuteTiming | None:
    """The mute timing that holds back an alert of ``team`` and ``severity`` at ``at``, if any."""
    return next((timing for timing in MUTE_TIMINGS if timing.mutes(team, severity, at)), None)
