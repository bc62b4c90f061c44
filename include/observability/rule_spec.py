"""What an alert rule is (:class:`RuleSpec`) and the parts the rules are built from: the
queries over the economics and the fleets' metrics, the two tiers of one signal, the
template of a notification's value and fleet. The rules themselves:
:mod:`.economics_rules` and :mod:`.alert_rules`."""

from __future__ import annotations

from dataclasses import dataclass

from include.observability.catalogue import ECONOMICS_BUCKET, FLEET_MEASUREMENT, TELEMETRY_BUCKET
from include.observability.flux import Flux

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
    #: what the rule is about, for its owner (:func:`.ownership.team_of_subject`): fleet,
    #: plan, model; None for the pipeline's own rules and for the anomalies, whose owner is
    #: their series' feature or model (:func:`.alert_rules.policies_file`)
    subject: str | None = None


def economics_query(measurement: str, fields: list[str], where=(), then=("last()",), start="-36h", preamble=()) -> Flux:
    return Flux(ECONOMICS_BUCKET, measurement, fields, where, then, start=start, stop="now()", preamble=preamble)


def fleet_query(fields: list[str], then: tuple[str, ...], start: str) -> Flux:
    return Flux(TELEMETRY_BUCKET, FLEET_MEASUREMENT, fields, then=then, start=start, stop="now()")


GROUP_BY_FLEET = f'group(columns: ["{FLEET_LABELS[0]}", "{FLEET_LABELS[1]}"])'
#: "$values.V.Value" is the reduced value of the rule, "$labels" the series' labels.
VALUE = "{{ humanize $values.V.Value }}"
FLEET = "{{ $labels.stage }}/{{ $labels.fleet_slug }}"
ECONOMICS_DAG = "ai_economics_daily"


def tiers(uid: str, title: str, group: str, limits: dict[str, tuple[float, str]], **spec) -> list[RuleSpec]:
    """The warning and critical tier of one signal: the same query, each tier its own limit and window."""
    op = spec.pop("op", "gt")
    return [
        RuleSpec(
            f"{uid}-{severity}", f"{title} ({severity})", group, severity, threshold=(op, limit), for_=window, **spec
        )
        for severity, (limit, window) in limits.items()
    ]
