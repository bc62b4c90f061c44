"""The build's decisions: request checks, SSM inputs, bundle checks, tag checks, restore."""

import json
import re

import pytest

from include import ami_build, pointers, ssm_paths
from include.baseline import sample_manifest

GOOD = {
    "fleet_stage": "staging",
    "fleet_slug": "gpu-default",
    "mode": "bake",
    "instance_type": "g4dn.xlarge",
    "start_instance_refresh": False,
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fleet_stage": "prod"}, "fleet_stage 'prod' is not one of"),
        ({"fleet_slug": "GPU default; rm -rf /"}, "must be lowercase letters"),
        ({"mode": "rebuild"}, "mode 'rebuild' is not one of base, bake, base_and_bake"),
        ({"instance_type": "g4dn.xlarge --force"}, "is not an EC2 instance type"),
        ({"start_instance_refresh": "yes"}, "must be true or false"),
    ],
)
def test_bad_requests_are_refused_with_a_clear_message(change, message):
    with pytest.raises(ami_build.InvalidRequest, match=message):
        ami_build.BuildRequest.from_params({**GOOD, **change})


def test_only_production_needs_approval():
    assert not ami_build.BuildRequest.from_params(GOOD).needs_approval
    assert ami_build.BuildRequest.from_params({**GOOD, "fleet_stage": "production"}).needs_approval


def _ssm(values):
    return lambda name: {"Value": values[name], "Version": 3} if name in values else None


PLATFORM = {
    ssm_paths.models_bucket(): "bp-models-1",
    ssm_paths.packer_instance_profile(): "bp-packer",
    ssm_paths.active_bundle("staging", "gpu-default"): "bundles/b-7",
    ssm_paths.fleet_ami("staging", "gpu-default"): "ami-0current",
}


def test_a_bake_starts_from_the_current_image_with_the_active_bundle():
    request = ami_build.BuildRequest.from_params(GOOD)
    inputs = ami_build.resolve_inputs(_ssm(PLATFORM), request)

    variables = ami_build.packer_variables(request, inputs, run_id="manual__1", region="us-east-1")

    assert (inputs.current_ami, inputs.current_ami_version, inputs.bundle_id) == ("ami-0current", 3, "b-7")
    assert variables["source_ami"] == "ami-0current"
    assert (variables["models_s3_prefix"], variables["bundle_id"]) == ("bundles/b-7", "b-7")
    assert variables["iam_instance_profile"] == "bp-packer"
    assert ami_build.expected_tags(variables) == {
        "fleet_stage": "staging",
        "fleet_slug": "gpu-default",
        "bundle_id": "b-7",
        "airflow_run_id": "manual__1",
    }


def test_a_base_build_starts_from_ubuntu_without_a_bundle():
    request = ami_build.BuildRequest.from_params({**GOOD, "mode": "base"})
    variables = ami_build.packer_variables(
        request, ami_build.resolve_inputs(_ssm(PLATFORM), request), run_id="r", region="x"
    )

    assert (variables["source_ami"], variables["models_s3_prefix"]) == ("", ssm_paths.NO_ACTIVE_BUNDLE)


@pytest.mark.parametrize(
    ("mode", "missing", "message"),
    [
        ("bake", ssm_paths.active_bundle("staging", "gpu-default"), "is missing or empty"),
        ("bake", ssm_paths.fleet_ami("staging", "gpu-default"), "build mode=base_and_bake first"),
        ("base", ssm_paths.models_bucket(), "/bp/models/bucket is missing"),
    ],
)
def test_missing_inputs_are_named(mode, missing, message):
    values = {k: v for k, v in PLATFORM.items() if k != missing}
    with pytest.raises(ami_build.MissingInputs, match=message):
        ami_build.resolve_inputs(_ssm(values), ami_build.BuildRequest.from_params({**GOOD, "mode": mode}))


def test_nothing_to_bake_without_an_active_bundle():
    values = {**PLATFORM, ssm_paths.active_bundle("staging", "gpu-default"): ssm_paths.NO_ACTIVE_BUNDLE}
    with pytest.raises(ami_build.MissingInputs, match="there is nothing to bake"):
        ami_build.resolve_inputs(_ssm(values), ami_build.BuildRequest.from_params(GOOD))


def _size_of(objects):
    return lambda key: len(objects[key]) if key in objects else None


def test_check_bundle_names_an_invalid_manifest_missing_assets_and_wrong_sizes():
    manifest = sample_manifest("b-7")
    objects = {"bundles/b-7/manifest.json": json.dumps(manifest).encode()}
    objects.update({asset["asset_s3_key"]: b"x" * asset["size_bytes"] for asset in manifest["assets"][1:]})
    truncated = manifest["assets"][2]
    objects[truncated["asset_s3_key"]] = b"x"

    with pytest.raises(ami_build.MissingInputs) as incomplete:
        ami_build.check_bundle(objects.__getitem__, _size_of(objects), "bp-models-1", "bundles/b-7")
    message = str(incomplete.value)
    assert re.search(r"assets/checkpoint/[0-9a-f]{64} is missing", message)
    assert f"{truncated['asset_s3_key']} is 1 bytes, the manifest says {truncated['size_bytes']}" in message

    manifest["assets"][0]["target_path"] = "custom_nodes/evil.py"
    objects["bundles/b-7/manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(ami_build.MissingInputs, match="must land under models/checkpoints/"):
        ami_build.check_bundle(objects.__getitem__, _size_of(objects), "bp-models-1", "bundles/b-7")


def test_tag_problems_name_each_wrong_tag():
    assert ami_build.tag_problems({"fleet_slug": "x"}, {"fleet_slug": "x", "airflow_run_id": "r1"}) == [
        "tag airflow_run_id is None, expected 'r1'"
    ]


def test_restore_puts_the_previous_ami_back_only_over_its_own_write():
    inputs = {"ami_parameter": "/p", "current_ami": "ami-old"}
    writes = []

    def write(name, value, **kwargs):
        writes.append((name, value))
        return 6

    ours = {"Value": "ami-new", "Version": 5}
    message = ami_build.restore_pointer(lambda n: ours, write, inputs, {"changed": True, "version": 5})
    assert writes == [("/p", "ami-old")]
    assert "restored to ami-old" in message

    with pytest.raises(pointers.PointerMoved, match="changed after this run"):
        ami_build.restore_pointer(
            lambda n: {"Value": "ami-x", "Version": 7}, write, inputs, {"changed": True, "version": 5}
        )
    assert "nothing to restore" in ami_build.restore_pointer(lambda n: ours, write, inputs, None)
    assert len(writes) == 1
