import ast
from pathlib import Path

import pytest

from include import resource_names, ssm_paths

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_fleet_paths_follow_seed_004():
    assert ssm_paths.active_bundle("staging", "gpu-default") == "/bp/fleets/staging/gpu-default/active_bundle"
    assert ssm_paths.desired_config("production", "sdxl") == "/bp/fleets/production/sdxl/desired_config"
    assert ssm_paths.fleet_ami("staging", "gpu-default") == "/bp/ami/fleets/staging/gpu-default"
    assert ssm_paths.fleet_secret("production") == "/bp/fleets/production/fleet-secret"
    assert ssm_paths.models_bucket() == "/bp/models/bucket"
    assert ssm_paths.packer_instance_profile() == "/bp/packer/instance_profile"
    assert ssm_paths.redis_endpoint() == "/bp/redis/endpoint"
    assert resource_names.fleet_asg("staging", "gpu-default") == "asg-staging-gpu-default"


@pytest.mark.parametrize(
    "slug",
    ["", "GPU", "gpu_default", "-gpu", "gpu-", "gpu--x", "../prod", "gpu/x", "a" * 41, "gpu;rm -rf", "9gpu"],
)
def test_a_slug_that_could_escape_its_path_is_refused(slug):
    with pytest.raises(ssm_paths.InvalidFleetName, match="fleet_slug"):
        ssm_paths.active_bundle("staging", slug)


def test_an_unknown_stage_is_refused():
    with pytest.raises(ssm_paths.InvalidFleetName, match="fleet_stage 'prod' is not one of staging, production"):
        ssm_paths.fleet_secret("prod")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/bp/fleets/staging/gpu-default/active_bundle", ("staging", "gpu-default")),
        ("/bp/fleets/production/sdxl/desired_config", ("production", "sdxl")),
        ("/bp/fleets/staging/fleet-secret", None),
        ("/bp/fleets/dev/gpu-default/active_bundle", None),
        ("/bp/fleets/staging/gpu-default/other", None),
    ],
)
def test_fleet_of_recognises_only_per_fleet_parameters(name, expected):
    assert ssm_paths.fleet_of(name) == expected


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


def test_no_module_but_ssm_paths_spells_a_bp_name():
    owner = REPO_ROOT / "include" / "ssm_paths.py"
    offenders = {
        str(path.relative_to(REPO_ROOT)): literals
        for folder in ("dags", "plugins", "include", "gpu_worker", "infra")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if path != owner and (literals := _bp_literals(path))
    }
    assert offenders == {}
    assert _bp_literals(owner), "the owner module itself must be seen by this check"
