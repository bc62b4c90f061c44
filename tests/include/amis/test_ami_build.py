"""The build's decisions: request checks, SSM inputs, packer variables, tag checks."""

import json

import pytest

from include.amis import build as ami_build
from include.errors import InvalidRequest
from include.naming import platform
from include.naming.fleet import Fleet

GOOD = {
    "fleet_stage": "staging",
    "fleet_slug": "gpu-default",
    "mode": "bake",
    "instance_type": "g4dn.xlarge",
    "start_instance_refresh": False,
}


def test_a_request_comes_back_from_its_serialized_form_as_it_was():
    request = ami_build.BuildRequest.from_params({**GOOD, "smoke_test": False, "force_build": True})
    data = json.loads(json.dumps(request.serialize()))

    assert ami_build.BuildRequest.deserialize(data, 1) == request
    assert request.wiring()["image_tags"] == {"fleet_stage": "staging", "fleet_slug": "gpu-default"}
    with pytest.raises(TypeError, match="BuildRequest version 2 is newer than this code's 1"):
        ami_build.BuildRequest.deserialize(data, 2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fleet_stage": "prod"}, "fleet_stage 'prod' is not one of"),
        ({"fleet_slug": "GPU default; rm -rf /"}, "must be lowercase letters"),
        ({"mode": "rebuild"}, "mode 'rebuild' is not one of base, bake, base_and_bake"),
        ({"instance_type": "g4dn.xlarge --force"}, "is not an EC2 instance type"),
        ({"start_instance_refresh": "yes"}, "must be true or false"),
        ({"smoke_test": "no"}, "smoke_test must be true or false"),
        ({"fleet_stage": "production", "smoke_test": False}, "smoke_test can be turned off only outside production"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(change, message):
    with pytest.raises(InvalidRequest, match=message):
        ami_build.BuildRequest.from_params({**GOOD, **change})


def _ssm(values):
    return lambda name: {"Value": values[name], "Version": 3} if name in values else None


PLATFORM = {
    platform.models_bucket_parameter(): "bp-models-1",
    platform.packer_instance_profile(): "bp-packer",
    platform.packer_subnet_id(): "subnet-0private",
    platform.packer_security_group_id(): "sg-0noinbound",
    platform.private_subnet_ids(): "subnet-0a,subnet-0b",
    platform.worker_security_group_id(): "sg-0worker",
    Fleet("staging", "gpu-default").active_bundle: "bundles/b-7",
    Fleet("staging", "gpu-default").ami_pointer: "ami-0current",
}


def test_a_bake_starts_from_the_current_image_with_the_active_bundle():
    request = ami_build.BuildRequest.from_params(GOOD)
    inputs = ami_build.resolve_inputs(_ssm(PLATFORM), request)

    variables = ami_build.packer_variables(request, inputs, run_id="manual__1", region="us-east-1")

    assert (inputs.current_ami, inputs.current_ami_version, inputs.bundle_id) == ("ami-0current", 3, "b-7")
    assert variables["source_ami"] == "ami-0current"
    assert (variables["models_s3_prefix"], variables["bundle_id"]) == ("bundles/b-7", "b-7")
    assert variables["iam_instance_profile"] == "bp-packer"
    assert (variables["subnet_id"], variables["security_group_id"]) == ("subnet-0private", "sg-0noinbound")
    assert (inputs.worker_subnet_id, inputs.worker_security_group_id) == ("subnet-0a", "sg-0worker")
    variables = ami_build.fingerprinted(variables, "f" * 64, "ami-0base")
    assert ami_build.expected_tags(variables) == {
        "fleet_stage": "staging",
        "fleet_slug": "gpu-default",
        "bundle_id": "b-7",
        "input_fingerprint": "f" * 64,
        "airflow_run_id": "manual__1",
    }
    assert "airflow_run_id" not in ami_build.expected_tags(variables, built_by_this_run=False)


def test_the_new_image_is_rolled_out_with_the_fleets_own_warmup_and_every_node_replaced():
    fleet = Fleet("staging", "gpu-default")
    config = '{"template_slug": "sdxl-standard", "instance_type": "g5.xlarge", "warmup_seconds": 480}'
    request = ami_build.BuildRequest.from_params(GOOD)

    preferences = ami_build.resolve_inputs(
        _ssm({**PLATFORM, fleet.desired_config: config}), request
    ).refresh_preferences
    without_config = ami_build.resolve_inputs(_ssm(PLATFORM), request).refresh_preferences

    assert preferences["InstanceWarmup"] == 480
    assert without_config["InstanceWarmup"] == 300
    assert preferences["AutoRollback"] is False  # AWS can't roll back an AMI resolved from SSM
    assert preferences["ScaleInProtectedInstances"] == "Refresh"


def test_a_base_build_starts_from_ubuntu_without_a_bundle():
    request = ami_build.BuildRequest.from_params({**GOOD, "mode": "base"})
    variables = ami_build.packer_variables(
        request, ami_build.resolve_inputs(_ssm(PLATFORM), request), run_id="r", region="x"
    )

    assert (variables["source_ami"], variables["models_s3_prefix"]) == ("", platform.NO_ACTIVE_BUNDLE)


@pytest.mark.parametrize(
    ("mode", "missing", "message"),
    [
        ("bake", Fleet("staging", "gpu-default").active_bundle, "is missing or empty"),
        ("bake", Fleet("staging", "gpu-default").ami_pointer, "build mode=base_and_bake first"),
        ("base", platform.models_bucket_parameter(), "/bp/models/bucket is missing"),
    ],
)
def test_missing_inputs_are_named(mode, missing, message):
    values = {k: v for k, v in PLATFORM.items() if k != missing}
    with pytest.raises(ami_build.MissingInputs, match=message):
        ami_build.resolve_inputs(_ssm(values), ami_build.BuildRequest.from_params({**GOOD, "mode": mode}))


def test_nothing_to_bake_without_an_active_bundle():
    values = {**PLATFORM, Fleet("staging", "gpu-default").active_bundle: platform.NO_ACTIVE_BUNDLE}
    with pytest.raises(ami_build.MissingInputs, match="there is nothing to bake"):
        ami_build.resolve_inputs(_ssm(values), ami_build.BuildRequest.from_params(GOOD))


def test_tag_problems_name_each_wrong_tag():
    assert ami_build.tag_problems({"fleet_slug": "x"}, {"fleet_slug": "x", "airflow_run_id": "r1"}) == [
        "tag airflow_run_id is None, expected 'r1'"
    ]


def test_smoke_test_is_on_unless_turned_off_outside_production():
    assert ami_build.BuildRequest.from_params(GOOD).smoke_test
    assert not ami_build.BuildRequest.from_params({**GOOD, "smoke_test": False}).smoke_test


@pytest.mark.parametrize(
    ("force", "digest", "reusable", "action", "said"),
    [
        (False, "d" * 64, None, "build", "no image of staging/gpu-default was built from these inputs"),
        (False, None, None, "build", "no fingerprint"),
        (True, "d" * 64, "ami-0same", "build", "force_build is on"),
        (False, "d" * 64, "ami-0same", "reuse", "Packer is skipped"),
        (False, "d" * 64, "ami-0current", "unchanged", "already the fleet's image"),
        (False, "d" * 64, None, "build", "ami-0revoked was built from these inputs (dddddddddddd) but is revoked"),
    ],
)
def test_a_build_is_skipped_only_for_an_image_from_the_same_inputs(force, digest, reusable, action, said):
    request = ami_build.BuildRequest.from_params({**GOOD, "force_build": force})

    revoked = "ami-0revoked" if "revoked" in said else None
    decision = ami_build.decide(request, digest, reusable, "ami-0current", revoked)

    assert decision.action == action
    assert said in decision.reason
    assert decision.image_id == (reusable if action != "build" else None)
