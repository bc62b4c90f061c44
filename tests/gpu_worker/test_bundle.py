"""The bundle installer against the emulator's S3, with a temporary ComfyUI root and
state directory."""

import hashlib
import json

import pytest

from gpu_worker import bundle, layout
from gpu_worker.manifest import InvalidManifest, problems_of

ACCOUNT = "123456789012"
BUCKET = f"bp-models-{ACCOUNT}"


def _asset(kind, name, content, target=None):
    sha = hashlib.sha256(content).hexdigest()
    return {
        "kind": kind,
        "sha256": sha,
        "asset_s3_key": layout.asset_key(kind, sha),
        "original_filename": name,
        "target_path": target or layout.KIND_TARGET_DIRS[kind] + name,
        "action": "copy",
    }


def _manifest(bundle_id, *assets):
    return {"manifest_version": 1, "bundle_id": bundle_id, "name": bundle_id, "assets": list(assets)}


@pytest.fixture
def state(tmp_path):
    """The installer's state directory (root's /var/lib/bp-bundle on a node), outside the root."""
    return tmp_path.parent / f"{tmp_path.name}-state"


def _installer(s3, root, state):
    return bundle.Installer(s3, root, bucket_owner=ACCOUNT, state_dir=state)


@pytest.fixture
def s3(aws):
    client = aws("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _publish(s3, manifest, contents):
    for asset, content in zip(manifest["assets"], contents, strict=True):
        s3.put_object(Bucket=BUCKET, Key=asset["asset_s3_key"], Body=content)
    prefix = layout.bundle_prefix(manifest["bundle_id"])
    s3.put_object(Bucket=BUCKET, Key=layout.manifest_key(prefix), Body=json.dumps(manifest).encode())
    return prefix


CHECKPOINT = b"checkpoint-v1" * 100
LORA = b"lora-v1" * 50
VAE = b"vae-v2" * 40


@pytest.fixture
def first(s3):
    manifest = _manifest(
        "bundle-a", _asset("checkpoint", "base.safetensors", CHECKPOINT), _asset("lora", "x.safetensors", LORA)
    )
    return _publish(s3, manifest, [CHECKPOINT, LORA])


def test_install_writes_files_and_state(s3, first, tmp_path, state):
    result = _installer(s3, tmp_path, state).apply(BUCKET, first)

    assert (tmp_path / "models/checkpoints/base.safetensors").read_bytes() == CHECKPOINT
    assert (tmp_path / "models/loras/x.safetensors").read_bytes() == LORA
    assert bundle.read_state(state).active_bundle_id == "bundle-a"
    assert bundle.read_state(state).installed_paths == (
        "models/checkpoints/base.safetensors",
        "models/loras/x.safetensors",
    )
    assert sorted(result.downloaded) == ["models/checkpoints/base.safetensors", "models/loras/x.safetensors"]
    assert not (tmp_path / bundle.STAGING_DIR).exists()


def test_reinstall_is_a_no_op_without_any_s3_call(s3, first, tmp_path, state):
    _installer(s3, tmp_path, state).apply(BUCKET, first)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    class NoS3:
        def __getattr__(self, name):
            raise AssertionError(f"S3 was called: {name}")

    result = _installer(NoS3(), tmp_path, state).apply(BUCKET, first)

    assert result.skipped
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before


def test_switching_bundle_removes_the_old_files_and_keeps_shared_ones(s3, first, tmp_path, state):
    _installer(s3, tmp_path, state).apply(BUCKET, first)
    second = _publish(
        s3,
        _manifest(
            "bundle-b", _asset("checkpoint", "base.safetensors", CHECKPOINT), _asset("vae", "v.safetensors", VAE)
        ),
        [CHECKPOINT, VAE],
    )

    result = _installer(s3, tmp_path, state).apply(BUCKET, second)

    assert not (tmp_path / "models/loras/x.safetensors").exists()
    assert (tmp_path / "models/vae/v.safetensors").read_bytes() == VAE
    assert result.kept == ["models/checkpoints/base.safetensors"]
    assert result.removed == ["models/loras/x.safetensors"]
    assert bundle.read_state(state).active_bundle_id == "bundle-b"


def test_a_tampered_asset_installs_nothing_and_keeps_the_previous_bundle(s3, first, tmp_path, state):
    _installer(s3, tmp_path, state).apply(BUCKET, first)
    new_checkpoint = b"checkpoint-v2" * 100
    manifest = _manifest(
        "bundle-c", _asset("checkpoint", "base.safetensors", new_checkpoint), _asset("vae", "v.safetensors", VAE)
    )
    prefix = _publish(s3, manifest, [b"not what the manifest promised", VAE])

    with pytest.raises(bundle.BundleError, match="sha256 is"):
        _installer(s3, tmp_path, state).apply(BUCKET, prefix)

    assert (tmp_path / "models/checkpoints/base.safetensors").read_bytes() == CHECKPOINT
    assert (tmp_path / "models/loras/x.safetensors").read_bytes() == LORA
    assert not (tmp_path / "models/vae/v.safetensors").exists()
    assert bundle.read_state(state).active_bundle_id == "bundle-a"
    assert not (tmp_path / bundle.STAGING_DIR).exists()


def test_a_models_bucket_another_account_owns_serves_nothing_and_installs_nothing(s3, first, tmp_path, state):
    """The bucket name is predictable: the installer reads only from its own account's."""
    from botocore.exceptions import ClientError

    squatted = bundle.Installer(s3, tmp_path, bucket_owner="999999999999", state_dir=state)

    with pytest.raises(ClientError) as refused:
        squatted.apply(BUCKET, first)

    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert not (tmp_path / "models").exists()
    assert bundle.read_state(state).active_bundle_id is None


def test_a_symlink_that_leads_out_of_the_root_is_refused(s3, tmp_path, state):
    root, outside = tmp_path / "comfyui", tmp_path / "etc"
    (root / "models").mkdir(parents=True)
    outside.mkdir()
    (root / "models" / "loras").symlink_to(outside)
    prefix = _publish(s3, _manifest("bundle-d", _asset("lora", "x.safetensors", LORA)), [LORA])

    with pytest.raises(bundle.BundleError, match="models/loras is a symlink or not a directory"):
        _installer(s3, root, state).apply(BUCKET, prefix)

    assert list(outside.iterdir()) == []


def test_the_stored_bundle_id_must_match_its_prefix(s3, tmp_path, state):
    manifest = _manifest("bundle-e", _asset("lora", "x.safetensors", LORA))
    s3.put_object(Bucket=BUCKET, Key=manifest["assets"][0]["asset_s3_key"], Body=LORA)
    s3.put_object(Bucket=BUCKET, Key="bundles/other/manifest.json", Body=json.dumps(manifest).encode())

    with pytest.raises(InvalidManifest, match="stored under bundles/other"):
        _installer(s3, tmp_path, state).apply(BUCKET, "bundles/other")


GOOD = _asset("checkpoint", "ok.safetensors", b"x")
MALICIOUS = {
    "a checkpoint where ComfyUI executes code": (
        [{**GOOD, "target_path": "custom_nodes/evil.safetensors"}],
        "must land under models/checkpoints/",
    ),
    "climbing out of the root": ([{**GOOD, "target_path": "models/checkpoints/../../etc/cron.d/x"}], "'..'"),
    "an absolute path": ([{**GOOD, "target_path": "/etc/passwd"}], "absolute"),
    "a backslash": ([{**GOOD, "target_path": "models\\checkpoints\\x"}], "backslash"),
    "a NUL byte": ([{**GOOD, "target_path": "models/checkpoints/x\x00.png"}], "NUL"),
    "a short sha": ([{**GOOD, "sha256": "abc123"}], "64 lowercase hex"),
    "a key that is not content-addressed": (
        [{**GOOD, "asset_s3_key": "assets/checkpoint/other"}],
        "asset_s3_key must be",
    ),
    "an unknown kind": ([{**GOOD, "kind": "script"}], "kind 'script'"),
    "an action other than copy": ([{**GOOD, "action": "exec"}], "only copy"),
    "a size that is not a byte count": ([{**GOOD, "size_bytes": -1}], "size_bytes must be a whole number of bytes"),
    "two assets on one target": ([GOOD, {**GOOD, "kind": "checkpoint"}], "also the target of assets[0]"),
    "the directory itself": ([{**GOOD, "target_path": "models/checkpoints/"}], "empty or '.' component"),
}


@pytest.mark.parametrize("case", MALICIOUS)
def test_malicious_manifests_are_rejected_with_a_clear_line(case):
    assets, expected = MALICIOUS[case]

    problems = problems_of(_manifest("bundle-x", *assets))

    assert any(expected in problem for problem in problems), problems


def test_a_valid_manifest_has_no_problems_and_a_wrong_version_has_one():
    assert problems_of(_manifest("bundle-x", GOOD)) == []
    assert problems_of({**_manifest("bundle-x", GOOD), "manifest_version": 2}) == ["manifest_version must be 1, not 2"]


def test_cli_validate_prints_one_line_per_problem_and_never_a_traceback(tmp_path, capsys):
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps(_manifest("../x", {**GOOD, "target_path": "/etc/passwd", "action": "exec"})))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_manifest("bundle-x", GOOD)))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    assert bundle.main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("  - ")] == [
        "  - bundle_id '../x' must be 1-128 letters, digits, '.', '_' or '-'",
        "  - assets[0]: action 'exec' is not supported (only copy)",
        "  - assets[0]: target_path is absolute",
    ]
    assert bundle.main(["validate", str(broken)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    assert bundle.main(["validate", str(good)]) == 0
    assert "valid manifest v1, bundle bundle-x, 1 asset(s)" in capsys.readouterr().out


def test_cli_apply_from_ssm_parameters_and_status(aws, s3, first, tmp_path, state, capsys):
    ssm = aws("ssm", region_name="us-east-1")
    ssm.put_parameter(Name="/test/bucket", Value=BUCKET, Type="String")
    ssm.put_parameter(Name="/test/active", Value=first, Type="String")
    args = [
        "apply",
        "--root",
        str(tmp_path),
        "--bucket-parameter",
        "/test/bucket",
        "--prefix-parameter",
        "/test/active",
        "--state-dir",
        str(state),
    ]

    assert bundle.main([*args, "--record-baked"]) == 0
    assert "bundle bundle-a active: 2 file(s) installed" in capsys.readouterr().out
    assert bundle.main(args) == 0
    assert "already active: nothing to do" in capsys.readouterr().out
    assert bundle.main(["status", "--state-dir", str(state), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["active_bundle_id"], status["baked_bundle_id"]) == ("bundle-a", "bundle-a")

    ssm.put_parameter(Name="/test/active", Value=layout.NO_ACTIVE_BUNDLE, Type="String", Overwrite=True)
    assert bundle.main(args) == 0
    assert "no active bundle" in capsys.readouterr().out
