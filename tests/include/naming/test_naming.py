"""Every name the platform derives, and that no other module spells one."""

import ast
from pathlib import Path

import pytest

from include.errors import InvalidRequest
from include.naming import platform
from include.naming.fleet import Fleet

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_fleet_paths_follow_seed_004():
    assert Fleet("staging", "gpu-default").active_bundle == "/bp/fleets/staging/gpu-default/active_bundle"
    assert Fleet("production", "sdxl").desired_config == "/bp/fleets/production/sdxl/desired_config"
    assert Fleet("staging", "gpu-default").ami_pointer == "/bp/ami/fleets/staging/gpu-default"
    assert platform.fleet_secret("production") == "/bp/fleets/production/fleet-secret"
    assert platform.models_bucket_parameter() == "/bp/models/bucket"
    assert platform.packer_instance_profile() == "/bp/packer/instance_profile"
    assert platform.redis_endpoint() == "/bp/redis/endpoint"
    assert Fleet("staging", "gpu-default").auto_scaling_group == "asg-staging-gpu-default"
    assert Fleet("staging", "gpu-default").fleet_stack == "bp-gpu-fleet-staging-gpu-default"
    assert Fleet("staging", "gpu-default").shared_stack == "bp-gpu-shared-staging"
    assert Fleet("staging", "gpu-default").log_group == "/gpu-workers/staging/gpu-default"
    assert Fleet("staging", "x").rollout_audit_key("r1") == "audit/rollouts/staging/x/r1.jsonl"


def test_names_carry_the_fleet_through_xcom_and_back():
    fleet = Fleet("production", "sdxl")
    names = fleet.names()
    assert Fleet.of(names) == fleet
    assert names["lock"] == "/bp/fleets/production/sdxl/change_lock"
    assert names["apply_document"] == "bp-bundle-apply-production"


@pytest.mark.parametrize(
    "slug",
    ["", "GPU", "gpu_default", "-gpu", "gpu-", "gpu--x", "../prod", "gpu/x", "a" * 41, "gpu;rm -rf", "9gpu"],
)
def test_a_slug_that_could_escape_its_path_is_refused(slug):
    with pytest.raises(InvalidRequest, match="fleet_slug"):
        Fleet("staging", slug)


def test_an_unknown_stage_is_refused():
    with pytest.raises(InvalidRequest, match="fleet_stage 'prod' is not one of staging, production"):
        platform.fleet_secret("prod")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/bp/fleets/staging/gpu-default/active_bundle", Fleet("staging", "gpu-default")),
        ("/bp/fleets/production/sdxl/desired_config", Fleet("production", "sdxl")),
        ("/bp/fleets/staging/fleet-secret", None),
        ("/bp/fleets/dev/gpu-default/active_bundle", None),
        ("/bp/fleets/staging/gpu-default/other", None),
    ],
)
def test_only_per_fleet_parameters_name_a_fleet(name, expected):
    assert Fleet.from_parameter_name(name) == expected


def _bp_literals(path: Path) -> list[str]:
    """String constants starting with /bp/ in a module, docstrings excluded."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("/bp")
        and id(node) not in docstrings
    ]


def test_no_module_but_the_naming_package_spells_a_bp_name():
    owners = {REPO_ROOT / "include" / "naming" / "platform.py"}
    offenders = {
        str(path.relative_to(REPO_ROOT)): literals
        for folder in ("dags", "plugins", "include", "gpu_worker", "infra")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if path not in owners and (literals := _bp_literals(path))
    }
    assert offenders == {}
    assert all(_bp_literals(owner) for owner in owners), "the owner module itself must be seen by this check"


def test_an_ami_pointer_names_its_fleet_and_nothing_else_does():
    fleet = Fleet("staging", "gpu-default")
    assert Fleet.from_ami_pointer(fleet.ami_pointer) == fleet
    assert Fleet.from_ami_pointer("/bp/ami/fleets/prod/gpu-default") is None  # not a stage
    assert Fleet.from_ami_pointer(fleet.active_bundle) is None


def test_a_described_resources_tags_read_as_a_dict():
    assert platform.tags_of({"Tags": [{"Key": "stage", "Value": "staging"}]}) == {"stage": "staging"}
    assert platform.tags_of({"ImageId": "ami-1"}) == {}
    assert platform.tags_of(None) == {}
