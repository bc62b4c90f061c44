"""The AMI quality gates' rules: the smoke test's verdict, the inputs' fingerprint, and
what a revocation does to each fleet pointer."""

import json

import pytest

from include.amis import fingerprint, revocation, smoke
from include.errors import InvalidRequest
from include.naming.fleet import Fleet

GOOD_OUTPUT = "\n".join(
    [
        "PASS gpu: NVIDIA A10G, 550.54.15",
        "PASS cuda: torch 2.4.0 CUDA 12.1 NVIDIA A10G",
        "PASS comfyui: HTTP 200 from /system_stats",
        "PASS worker: gpu_worker imports",
        "PASS agent: enabled",
        "PASS owners: code under /opt/comfyui and /opt/worker is root's alone",
        "PASS bundle: baked bundle b-7 expected b-7",
    ]
)


def test_a_bake_must_pass_every_check_and_a_base_image_has_no_bundle_check():
    assert smoke.expected_checks("b-7") == ["gpu", "cuda", "comfyui", "worker", "agent", "owners", "bundle"]
    assert smoke.expected_checks("none") == ["gpu", "cuda", "comfyui", "worker", "agent", "owners"]
    assert smoke.document_parameters(None) == {"expectedBundle": ["none"]}


def test_an_image_that_passes_every_check_passes():
    verdict = smoke.judge(
        "ami-1", "i-1", {"Status": "Success", "StandardOutputContent": GOOD_OUTPUT}, smoke.expected_checks("b-7")
    )

    assert verdict.passed
    assert "passed its smoke test on i-1" in verdict.summary()
    assert [c["check"] for c in verdict.as_dict()["checks"]] == [*smoke.CHECKS]


def test_a_failed_check_is_named_with_what_it_printed():
    output = GOOD_OUTPUT.replace(
        "PASS cuda: torch 2.4.0 CUDA 12.1 NVIDIA A10G", "FAIL cuda: AssertionError: torch.cuda.is_available() is False"
    )

    verdict = smoke.judge(
        "ami-1", "i-1", {"Status": "Failed", "StandardOutputContent": output}, smoke.expected_checks("b-7")
    )

    assert not verdict.passed
    assert [r.check for r in verdict.failed] == ["cuda"]
    assert verdict.summary() == (
        "AMI ami-1 failed its smoke test on i-1: cuda (AssertionError: torch.cuda.is_available() is False)."
    )


def test_a_check_that_printed_nothing_failed_and_so_did_a_document_that_did_not_succeed():
    cut = "PASS gpu: NVIDIA A10G, 550.54.15\n"
    verdict = smoke.judge(
        "ami-1",
        "i-1",
        {"Status": "TimedOut", "StandardOutputContent": cut, "StandardErrorContent": "killed"},
        ["gpu", "cuda"],
    )
    assert [r.check for r in verdict.failed] == ["cuda"]
    assert "cuda (printed no result)" in verdict.summary()
    assert "stderr: killed" in verdict.summary()

    all_printed = smoke.judge("ami-1", "i-1", {"Status": "Failed", "StandardOutputContent": GOOD_OUTPUT}, ["gpu"])
    assert not all_printed.passed
    assert "document (Run Command ended Failed)" in all_printed.summary()


def test_a_smoke_instance_is_tagged_with_its_run_its_image_and_its_fleet():
    tags = smoke.instance_tags(Fleet("staging", "gpu-default"), "ami-1", "gpu_ami_build_and_bake", "manual__x")
    assert tags["bp:role"] == "ami-smoke"
    assert (tags["stage"], tags["fleet"], tags["smoke_test_of"], tags["airflow_run_id"]) == (
        "staging", "gpu-default", "ami-1", "manual__x"
    )  # fmt: skip


def _fingerprint(tmp_path, **change):
    args = {"mode": "bake", "base_image": "ami-0base", "manifest": b'{"assets": []}', "packer_dir": tmp_path}
    args.update(change)
    return fingerprint.fingerprint(args["mode"], args["base_image"], args["manifest"], args["packer_dir"]).digest


def test_the_fingerprint_changes_with_each_input_and_only_with_them(tmp_path):
    (tmp_path / "scripts").mkdir()
    (tmp_path / "comfyui-worker.pkr.hcl").write_text("source {}")
    (tmp_path / "scripts" / "install.sh").write_text("echo 1")
    (tmp_path / "README.md").write_text("docs")
    first = _fingerprint(tmp_path)

    assert _fingerprint(tmp_path) == first
    (tmp_path / "README.md").write_text("other docs")
    assert _fingerprint(tmp_path) == first  # the README builds no image
    assert _fingerprint(tmp_path, base_image="ami-0other") != first
    assert _fingerprint(tmp_path, manifest=b'{"assets": [1]}') != first
    assert _fingerprint(tmp_path, mode="base_and_bake") != first
    (tmp_path / "scripts" / "install.sh").write_text("echo 2")
    assert _fingerprint(tmp_path) != first


def test_a_bake_on_a_baked_image_has_the_base_of_that_image():
    assert fingerprint.root_base_image("ami-0baked", {"base_image": "ami-0root"}) == "ami-0root"
    assert fingerprint.root_base_image("ami-0root", {}) == "ami-0root"


def _image(image_id, created, digest, state="available", **tags):
    tag_list = [{"Key": "input_fingerprint", "Value": digest}, *({"Key": k, "Value": v} for k, v in tags.items())]
    return {"ImageId": image_id, "CreationDate": created, "State": state, "Tags": tag_list}


def test_the_newest_available_unrevoked_image_with_the_fingerprint_is_reused():
    images = [
        _image("ami-old", "2026-11-01", "d1"),
        _image("ami-new", "2026-11-20", "d1"),
        _image("ami-revoked", "2026-11-25", "d1", revoked="true"),
        _image("ami-pending", "2026-11-26", "d1", state="pending"),
        _image("ami-other", "2026-11-27", "d2"),
    ]
    assert fingerprint.same_inputs(images, "d1", revocation.REVOKED_TAG) == ("ami-new", "ami-revoked")
    assert fingerprint.same_inputs(images, "d3", revocation.REVOKED_TAG) == (None, None)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"image_id": "ami-12; rm -rf /", "reason": "x"}, "is not an AMI id"),
        ({"image_id": "ami-0123456789abcdef0", "reason": "  "}, "reason is required"),
        ({"image_id": "ami-0123456789abcdef0", "reason": "bad\n$(reboot)"}, "one line of at most 200"),
    ],
)
def test_a_bad_revocation_request_is_refused(params, message):
    with pytest.raises(InvalidRequest, match=message):
        revocation.RevocationRequest.from_params(params)


STAGING = "/bp/ami/fleets/staging/gpu-default"
OTHER = "/bp/ami/fleets/staging/gpu-large"
PROD = "/bp/ami/fleets/production/gpu-default"


def _history(*values, user="arn:aws:iam::1:user/ci"):
    return [{"Value": v, "Version": i + 1, "LastModifiedUser": user} for i, v in enumerate(values)]


def test_each_pointer_goes_back_to_what_it_held_before_the_image_and_a_moved_one_is_left_alone():
    histories = {
        STAGING: _history("ami-a", "ami-b", "ami-bad", "ami-bad"),
        OTHER: _history("ami-x", "ami-bad"),
        PROD: _history("ami-p", "ami-bad", "ami-q", user="arn:aws:iam::1:user/alice"),
        "/bp/ami/fleets/staging/untouched": _history("ami-a"),
    }

    plan = revocation.plan("ami-bad", {"fleet_stage": "staging"}, histories)

    assert [(r.pointer, r.previous_image, r.version) for r in plan.restores] == [
        (STAGING, "ami-b", 4),
        (OTHER, "ami-x", 2),
    ]
    assert [(m.pointer, m.now, m.modified_by) for m in plan.moved] == [(PROD, "ami-q", "arn:aws:iam::1:user/alice")]
    assert not plan.needs_approval
    assert revocation.RevocationPlan.deserialize(json.loads(json.dumps(plan.serialize())), 1) == plan


def test_a_production_pointer_needs_an_approval():
    plan = revocation.plan("ami-bad", {"fleet_stage": "staging"}, {PROD: _history("ami-p", "ami-bad")})
    assert plan.needs_approval


def test_revoking_the_only_image_a_fleet_ever_had_is_refused_with_what_to_do():
    with pytest.raises(
        revocation.RevocationRefused, match=r"only image staging/gpu-default ever had.*mode=base_and_bake"
    ):
        revocation.plan("ami-bad", {}, {STAGING: _history("ami-bad"), OTHER: _history("ami-x", "ami-bad")})


def test_an_image_that_is_missing_or_not_ours_is_refused():
    with pytest.raises(revocation.RevocationRefused, match="does not exist"):
        revocation.check_provenance("ami-1", None)
    with pytest.raises(revocation.RevocationRefused, match="not an image this platform built: it has no fleet_stage"):
        revocation.check_provenance("ami-1", {"Name": "someone's", "Tags": [{"Key": "fleet_slug", "Value": "x"}]})


def test_going_back_to_a_gone_or_revoked_image_is_refused():
    plan = revocation.plan("ami-bad", {}, {STAGING: _history("ami-b", "ami-bad"), OTHER: _history("ami-x", "ami-bad")})
    images = {
        "ami-b": {
            "State": "available",
            "Tags": [{"Key": "revoked", "Value": "true"}, {"Key": "revoked_reason", "Value": "cve"}],
        },
        "ami-x": None,
    }
    with pytest.raises(revocation.RevocationRefused) as refused:
        revocation.check_previous_images(plan, images)
    assert "ami-b, which is revoked too (cve)" in str(refused.value)
    assert "ami-x, which is gone" in str(refused.value)
    revocation.check_previous_images(plan, {"ami-b": {"State": "available"}, "ami-x": {"State": "available"}})


def test_a_revoked_image_says_by_whom_and_why():
    assert revocation.revocation_of({}) is None
    assert revocation.revocation_of(revocation.revoked_tags("driver crash", "manual__r")) == (
        "revoked by manual__r: driver crash"
    )


def _baked(parent_of: dict[str, str], stage: str = "staging"):
    """``baked_from(parent)`` over images whose base_ami is given by ``parent_of``."""
    images = {i: {"ImageId": i, "Tags": [{"Key": "fleet_stage", "Value": stage}]} for i in parent_of}
    return lambda parent: [images[i] for i, base in parent_of.items() if base == parent]


def test_the_images_baked_from_a_revoked_one_are_found_to_any_depth_each_once():
    found = revocation.descendants_of(
        "ami-base", _baked({"ami-b1": "ami-base", "ami-b2": "ami-base", "ami-b1x": "ami-b1", "ami-other": "ami-o"})
    )
    assert [(d.image_id, d.base_ami) for d in found] == [("ami-b1", "ami-base"), ("ami-b2", "ami-base"),
                                                          ("ami-b1x", "ami-b1")]  # fmt: skip
    loop = revocation.descendants_of("ami-a", _baked({"ami-b": "ami-a", "ami-a": "ami-b"}))
    assert [d.image_id for d in loop] == ["ami-b"]  # a tag loop ends


def test_revocation_is_inherited_each_pointer_on_the_tree_goes_back_outside_it():
    tree = revocation.descendants_of("ami-base", _baked({"ami-b1": "ami-base", "ami-b2": "ami-base"}))
    histories = {
        STAGING: _history("ami-old", "ami-base"),
        OTHER: _history("ami-x", "ami-base", "ami-b1"),  # a bake on the bad base: back past both
        PROD: _history("ami-p", "ami-b2"),
    }

    plan = revocation.plan("ami-base", {"fleet_stage": "staging"}, histories, tree)

    assert plan.tree == ("ami-base", "ami-b1", "ami-b2")
    assert [(r.pointer, r.revoked, r.previous_image) for r in plan.restores] == [
        (PROD, "ami-b2", "ami-p"),
        (STAGING, "ami-base", "ami-old"),
        (OTHER, "ami-b1", "ami-x"),
    ]
    assert plan.needs_approval  # one production fleet: the whole tree waits for one approval
    assert plan.lines()[:2] == ["ami-b1: baked from ami-base (staging), revoked with it",
                                "ami-b2: baked from ami-base (staging), revoked with it"]  # fmt: skip
    assert revocation.RevocationPlan.deserialize(json.loads(json.dumps(plan.serialize())), 2) == plan
    with pytest.raises(revocation.RevocationRefused, match="never had an image but ami-base and those baked from it"):
        revocation.plan("ami-base", {}, {STAGING: _history("ami-base", "ami-b1")}, tree)
    assert revocation.revoked_tags("driver crash", "r1", "ami-base")["revoked_reason"] == (
        "driver crash (baked from revoked ami-base)"
    )
