import json

import pytest

from include.fleets import config as fleet_config
from include.fleets.config import FleetConfig, InvalidFleetConfig, parse_desired_config

SOURCE = "/bp/fleets/staging/gpu-default/desired_config"


def _parse(value):
    return parse_desired_config(value if isinstance(value, str) else json.dumps(value), source=SOURCE)


def _problems(value) -> list[str]:
    with pytest.raises(InvalidFleetConfig) as invalid:
        _parse(value)
    assert str(invalid.value).startswith(f"desired_config {SOURCE} is invalid: ")
    return invalid.value.problems


def test_the_templates_defaults_fill_what_the_config_leaves_out():
    config = _parse({"template_slug": "video-large", "instance_type": "g6e.xlarge"})

    assert config == FleetConfig(
        template_slug="video-large",
        instance_types=("g6e.xlarge",),
        max_size=4,
        warmup_seconds=600,
        backlog_target=1.0,
        scale_to_zero_minutes=30,
        error_rate_alarm_percent=20,  # seed 004's alarm tiers
        queue_deep_jobs=10,
        queue_deep_minutes=30,
        drain_timeout_seconds=900,  # a leaving node's 15 minutes to finish its prompts
    )


def test_a_full_config_keeps_its_values_and_its_instance_type_order():
    value = {
        "template_slug": "sdxl-standard",
        "instance_types": ["g5.xlarge", "g4dn.xlarge"],
        "max_size": 10,
        "warmup_seconds": 240,
        "backlog_target": 2.5,
        "scale_to_zero_minutes": 20,
        "error_rate_alarm_percent": 35,
        "queue_deep_jobs": 40,
        "queue_deep_minutes": 15,
        "drain_timeout_seconds": 1800,
    }
    config = _parse(value)

    assert config.instance_types == ("g5.xlarge", "g4dn.xlarge")
    assert config.as_dict() == {**value, "backlog_target": 2.5}
    assert FleetConfig.from_dict(config.as_dict()) == config


def test_the_baselines_config_is_valid():
    from devstack.baseline import DEFAULT_DESIRED_CONFIG

    assert _parse(DEFAULT_DESIRED_CONFIG).max_size == DEFAULT_DESIRED_CONFIG["max_size"]


def test_every_template_is_self_consistent():
    for template in fleet_config.templates().values():
        assert 1 <= template.defaults["max_size"] <= template.max_size_limit
        assert len(template.instance_types) == len(set(template.instance_types))
        assert _parse({"template_slug": template.slug, "instance_type": template.instance_types[0]})


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"template_slug": "sdxl-standard",', "is not valid JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", "is JSON list, not an object"),
        ('"sdxl"', "is JSON str, not an object"),
    ],
)
def test_text_that_is_not_a_json_object_is_refused(text, problem):
    assert _problems(text)[0].startswith(problem)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"template_slug": "sdxl-mega"}, "template_slug 'sdxl-mega' is not a fleet template (known: dev-single, "),
        ({"instance_types": ["p5.48xlarge"]}, "instance type p5.48xlarge is not allowed by template sdxl-standard"),
        ({"max_size": 11}, "max_size 11 is out of bounds for template sdxl-standard (1..10)"),
        ({"max_size": 0}, "max_size 0 is out of bounds for template sdxl-standard (1..10)"),
        ({"max_size": 2.5}, "max_size must be a whole number, got 2.5"),
        ({"max_size": True}, "max_size must be a whole number, got True"),
        ({"warmup_seconds": 5}, "warmup_seconds 5 is out of bounds (60..1800)"),
        ({"scale_to_zero_minutes": 1441}, "scale_to_zero_minutes 1441 is out of bounds (5..1440)"),
        ({"error_rate_alarm_percent": 101}, "error_rate_alarm_percent 101 is out of bounds (1..100)"),
        ({"queue_deep_minutes": 2}, "queue_deep_minutes 2 is out of bounds (5..1440)"),
        ({"drain_timeout_seconds": 7141}, "drain_timeout_seconds 7141 is out of bounds (60..7140)"),
        ({"queue_deep_jobs": "10"}, "queue_deep_jobs must be a whole number, got '10'"),
        ({"backlog_target": 0}, "backlog_target 0 is out of bounds (0.1..100.0 jobs per instance)"),
        ({"backlog_target": "2"}, "backlog_target must be a number, got '2'"),
        ({"instance_types": []}, "instance_types is required (at least one GPU instance type)"),
        ({"instance_types": "g5.xlarge"}, "instance_types must be a list of strings, got 'g5.xlarge'"),
        ({"instance_types": ["g5.xlarge", "g5.xlarge"]}, "instance_types repeats g5.xlarge"),
        ({"instance_type": "g5.xlarge"}, "give instance_type or instance_types, not both"),
        ({"maxSize": 3}, "unknown key(s) maxSize (allowed: template_slug, instance_type, instance_types, "),
    ],
)
def test_each_bad_value_is_named_with_its_bound(change, problem):
    value = {"template_slug": "sdxl-standard", "instance_types": ["g4dn.xlarge"], **change}

    problems = _problems(value)

    assert any(p.startswith(problem) for p in problems), problems


def test_every_problem_is_reported_at_once():
    problems = _problems(
        {"template_slug": "sdxl-standard", "instance_types": ["p4d.24xlarge", "g5.xlarge"], "max_size": 99, "x": 1}
    )

    assert len(problems) == 3, problems


def test_more_instance_types_than_the_stack_has_slots_is_refused():
    types = list(fleet_config.templates()["sdxl-standard"].instance_types)
    assert len(types) > fleet_config.MAX_INSTANCE_TYPES

    problems = _problems({"template_slug": "sdxl-standard", "instance_types": types})

    assert problems == [f"instance_types lists {len(types)} types; a fleet takes at most 4"]


def test_a_missing_template_slug_is_named():
    assert "template_slug is required" in _problems({"instance_types": ["g5.xlarge"]})


@pytest.mark.parametrize(
    ("stored", "warmup", "said"),
    [
        ({"template_slug": "video-large", "instance_type": "g6e.xlarge", "warmup_seconds": 420}, 420, None),
        (None, fleet_config.DEFAULT_WARMUP_SECONDS, "does not exist; using a warmup of 300 s"),
        ("{not json", fleet_config.DEFAULT_WARMUP_SECONDS, "is not valid JSON"),
    ],
)
def test_a_refresh_waits_the_deployed_warmup_or_says_why_it_waits_the_default(stored, warmup, said, caplog):
    text = stored if stored is None or isinstance(stored, str) else json.dumps(stored)

    with caplog.at_level("WARNING", logger="bp.fleet_config"):
        found = fleet_config.deployed_warmup_seconds(
            lambda name: {"Name": name, "Value": text} if text is not None and name == SOURCE else None, SOURCE
        )

    unread = [r.getMessage() for r in caplog.records if r.name == "bp.fleet_config"]
    assert found == warmup
    assert (unread == []) if said is None else (len(unread) == 1 and said in unread[0] and SOURCE in unread[0])
