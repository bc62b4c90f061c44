"""The fleet templates catalogue, and the ``desired_config`` a fleet is provisioned from.

The admin UI writes ``/bp/fleets/<stage>/<slug>/desired_config`` when a fleet is created
or edited (seed 004, "Fleet templates"). Its template decides which GPU instance types
the fleet may launch and the defaults for what the JSON leaves out. The catalogue is
``templates.json``, the same file as the backend's ``fleet-templates.json``, so the
UI and the pipeline judge a config by one set of rules.

Every problem in a config is reported at once, each naming the key and the bound, so a
platform engineer fixes the config in one round, before any stack is touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

log = logging.getLogger("bp.fleet_config")
TEMPLATES_FILE = Path(__file__).with_name("templates.json")

#: The fleet stack has four instance-type override slots (``gpu-fleet.yaml``).
MAX_INSTANCE_TYPES = 4
#: How long a new instance may boot before it counts; an instance refresh waits as long.
WARMUP_SECONDS_BOUNDS = (60, 1800)
#: ... and what a refresh waits where the fleet's desired_config is missing or invalid
DEFAULT_WARMUP_SECONDS = 300
#: Jobs per instance target tracking aims at.
BACKLOG_TARGET_BOUNDS = (0.1, 100.0)
#: CloudWatch caps an alarm's evaluation window (periods x 60 s) at one day.
SCALE_TO_ZERO_MINUTES_BOUNDS = (5, 1440)

TUNABLES = ("max_size", "warmup_seconds", "backlog_target", "scale_to_zero_minutes")
#: How long a leaving node may finish its prompts (the node agent's drain); the fleet's
#: termination hook holds it DRAIN_HOOK_MARGIN_SECONDS longer, and AWS caps a hook's
#: heartbeat timeout at 7200 s.
DRAIN_TIMEOUT_DEFAULT = 900
DRAIN_HOOK_MARGIN_SECONDS = 60
DRAIN_TIMEOUT_BOUNDS = (60, 7200 - DRAIN_HOOK_MARGIN_SECONDS)
#: The per-fleet alarm tiers (seed 004, "Alarm Tiers"): P2 ErrorRate >= 20 % for 5 minutes,
#: P3 QueueDepth >= 10 jobs for 30 minutes. A desired_config may set its own.
ALARM_DEFAULTS = {"error_rate_alarm_percent": 20, "queue_deep_jobs": 10, "queue_deep_minutes": 30}
ALARM_BOUNDS = {"error_rate_alarm_percent": (1, 100), "queue_deep_jobs": (1, 10000), "queue_deep_minutes": (5, 1440)}
KEYS = ("template_slug", "instance_type", "instance_types", *TUNABLES, *ALARM_DEFAULTS, "drain_timeout_seconds")


@dataclass(frozen=True)
class FleetTemplate:
    slug: str
    display_name: str
    instance_types: tuple[str, ...]
    defaults: dict[str, Any]
    max_size_limit: int


@cache
def templates(path: Path = TEMPLATES_FILE) -> dict[str, FleetTemplate]:
    """The catalogue, by template slug."""
    raw = json.loads(path.read_text())["templates"]
    return {
        slug: FleetTemplate(
            slug=slug,
            display_name=entry["display_name"],
            instance_types=tuple(entry["instance_types"]),
            defaults=dict(entry["defaults"]),
            max_size_limit=int(entry["max_size_limit"]),
        )
        for slug, entry in raw.items()
    }


@dataclass(frozen=True)
class FleetConfig:
    """A validated desired_config with the template's defaults filled in."""

    template_slug: str
    instance_types: tuple[str, ...]
    max_size: int
    warmup_seconds: int
    backlog_target: float
    scale_to_zero_minutes: int
    error_rate_alarm_percent: int = ALARM_DEFAULTS["error_rate_alarm_percent"]
    queue_deep_jobs: int = ALARM_DEFAULTS["queue_deep_jobs"]
    queue_deep_minutes: int = ALARM_DEFAULTS["queue_deep_minutes"]
    drain_timeout_seconds: int = DRAIN_TIMEOUT_DEFAULT

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "instance_types": list(self.instance_types)}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> FleetConfig:
        return cls(**{**value, "instance_types": tuple(value["instance_types"])})


class InvalidFleetConfig(ValueError):
    """A desired_config that can't be provisioned; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"desired_config {source} is invalid: {'; '.join(problems)}")


def deployed_warmup_seconds(read: Callable[[str], dict[str, Any] | None], parameter: str) -> int:
    """The warmup an instance refresh of the fleet waits: its desired_config's (``read``
    returns the SSM parameter or None), or :data:`DEFAULT_WARMUP_SECONDS`, with a warning
    in the task's log saying why."""
    config = read(parameter)
    if config is None:
        log.warning("%s does not exist; using a warmup of %s s", parameter, DEFAULT_WARMUP_SECONDS)
        return DEFAULT_WARMUP_SECONDS
    try:
        return parse_desired_config(config["Value"], source=parameter).warmup_seconds
    except InvalidFleetConfig as error:
        log.warning("%s; using a warmup of %s s", error, DEFAULT_WARMUP_SECONDS)
        return DEFAULT_WARMUP_SECONDS


def parse_desired_config(text: str, *, source: str) -> FleetConfig:
    """Parse and validate the JSON the admin UI wrote; raise :class:`InvalidFleetConfig`."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidFleetConfig(
            source, [f"is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"]
        ) from None
    if not isinstance(value, dict):
        raise InvalidFleetConfig(source, [f"is JSON {type(value).__name__}, not an object"])
    problems = _problems(value)
    if problems:
        raise InvalidFleetConfig(source, problems)
    template = templates()[value["template_slug"]]
    tunables = {key: value.get(key, template.defaults[key]) for key in TUNABLES}
    return FleetConfig(
        template_slug=template.slug,
        instance_types=tuple(_instance_types(value)),
        max_size=tunables["max_size"],
        warmup_seconds=tunables["warmup_seconds"],
        backlog_target=float(tunables["backlog_target"]),
        scale_to_zero_minutes=tunables["scale_to_zero_minutes"],
        **{key: value.get(key, default) for key, default in ALARM_DEFAULTS.items()},
        drain_timeout_seconds=value.get("drain_timeout_seconds", DRAIN_TIMEOUT_DEFAULT),
    )


def _instance_types(value: dict[str, Any]) -> list[str]:
    """The UI writes one ``instance_type``; a fleet may list several (Spot priority order)."""
    if "instance_type" in value:
        return [value["instance_type"]]
    return list(value.get("instance_types") or [])


def _problems(value: dict[str, Any]) -> list[str]:
    problems = []
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        problems.append(f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(KEYS)})")

    slug = value.get("template_slug")
    catalogue = templates()
    template = catalogue.get(slug) if isinstance(slug, str) else None
    if slug is None:
        problems.append("template_slug is required")
    elif template is None:
        problems.append(f"template_slug {slug!r} is not a fleet template (known: {', '.join(sorted(catalogue))})")

    problems += _instance_type_problems(value, template)

    if "max_size" in value:
        upper = template.max_size_limit if template else None
        problems += _integer_problems(value, "max_size", 1, upper, f" for template {slug}" if template else "")
    problems += _integer_problems(value, "warmup_seconds", *WARMUP_SECONDS_BOUNDS)
    problems += _integer_problems(value, "scale_to_zero_minutes", *SCALE_TO_ZERO_MINUTES_BOUNDS)
    problems += _integer_problems(value, "drain_timeout_seconds", *DRAIN_TIMEOUT_BOUNDS)
    for key, bounds in ALARM_BOUNDS.items():
        problems += _integer_problems(value, key, *bounds)
    if "backlog_target" in value:
        target = value["backlog_target"]
        low, high = BACKLOG_TARGET_BOUNDS
        if isinstance(target, bool) or not isinstance(target, int | float):
            problems.append(f"backlog_target must be a number, got {target!r}")
        elif not low <= target <= high:
            problems.append(f"backlog_target {target} is out of bounds ({low}..{high} jobs per instance)")
    return problems


def _instance_type_problems(value: dict[str, Any], template: FleetTemplate | None) -> list[str]:
    if "instance_type" in value and "instance_types" in value:
        return ["give instance_type or instance_types, not both"]
    if "instance_type" in value and not isinstance(value["instance_type"], str):
        return [f"instance_type must be a string, got {value['instance_type']!r}"]
    if "instance_types" in value and not (
        isinstance(value["instance_types"], list) and all(isinstance(t, str) for t in value["instance_types"])
    ):
        return [f"instance_types must be a list of strings, got {value['instance_types']!r}"]
    types = _instance_types(value)
    if not types:
        return ["instance_types is required (at least one GPU instance type)"]
    problems = []
    if len(types) > MAX_INSTANCE_TYPES:
        problems.append(f"instance_types lists {len(types)} types; a fleet takes at most {MAX_INSTANCE_TYPES}")
    duplicates = sorted({t for t in types if types.count(t) > 1})
    if duplicates:
        problems.append(f"instance_types repeats {', '.join(duplicates)}")
    if template is not None:
        problems += [
            f"instance type {t} is not allowed by template {template.slug} "
            f"(allowed: {', '.join(template.instance_types)})"
            for t in dict.fromkeys(types)
            if t not in template.instance_types
        ]
    return problems


def _integer_problems(value: dict[str, Any], key: str, low: int, high: int | None, where: str = "") -> list[str]:
    if key not in value:
        return []
    number = value[key]
    if isinstance(number, bool) or not isinstance(number, int):
        return [f"{key} must be a whole number, got {number!r}"]
    if number < low or (high is not None and number > high):
        return [f"{key} {number} is out of bounds{where} ({low}..{high if high is not None else 'any'})"]
    return []
