"""The installer runs as root in a tree the ``comfyui`` service user owns: that user
may swap any directory for a symlink at any moment, plant files, or forge state. Each
test plays that user at the worst moment (a hook on the S3 download) and proves that
nothing lands or is deleted outside the root and the previous bundle stays intact."""

from __future__ import annotations

import json
import stat

import pytest

from gpu_worker import bundle, manifest
from tests.gpu_worker.test_bundle import ACCOUNT, BUCKET, CHECKPOINT, LORA, _asset, _manifest, _publish

NEW_CHECKPOINT = b"checkpoint-v2" * 100
NEW_LORA = b"lora-v2" * 50


class DuringDownload:
    """The models bucket, with the service user acting while one asset downloads."""

    def __init__(self, s3, key: str, act) -> None:
        self.s3, self.key, self.act, self.acted = s3, key, act, False

    def get_object(self, **kwargs):
        answer = self.s3.get_object(**kwargs)
        if kwargs["Key"] == self.key and not self.acted:
            self.acted = True
            self.act()
        return answer


@pytest.fixture
def tree(tmp_path):
    root, outside, state = tmp_path / "comfyui", tmp_path / "etc-cron.d", tmp_path / "state"
    root.mkdir()
    outside.mkdir()
    return root, outside, state


@pytest.fixture
def installed(s3, tree):
    """bundle-a (a checkpoint and a LoRA) installed."""
    root, _, state = tree
    first = _manifest(
        "bundle-a", _asset("checkpoint", "base.safetensors", CHECKPOINT), _asset("lora", "x.safetensors", LORA)
    )
    bundle.Installer(s3, root, bucket_owner=ACCOUNT, state_dir=state).apply(
        BUCKET, _publish(s3, first, [CHECKPOINT, LORA])
    )
    return first


@pytest.fixture
def s3(aws):
    client = aws("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _second(s3):
    second = _manifest(
        "bundle-b",
        _asset("checkpoint", "base.safetensors", NEW_CHECKPOINT),
        _asset("lora", "y.safetensors", NEW_LORA),
    )
    return second, _publish(s3, second, [NEW_CHECKPOINT, NEW_LORA])


def _files(path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_directory_swapped_for_a_symlink_during_a_download_lands_nothing_outside(s3, tree, installed):
    root, outside, state = tree
    second, prefix = _second(s3)

    def swap():  # the LoRA directory was walked already; now it leads to /etc/cron.d
        (root / "models" / "loras").rename(root / "loras-moved")
        (root / "models" / "loras").symlink_to(outside)

    hooked = DuringDownload(s3, second["assets"][1]["asset_s3_key"], swap)
    with pytest.raises(bundle.BundleError, match="models/loras changed during the install"):
        bundle.Installer(hooked, root, bucket_owner=ACCOUNT, state_dir=state).apply(BUCKET, prefix)

    assert hooked.acted
    assert _files(outside) == {}
    assert (root / "models/checkpoints/base.safetensors").read_bytes() == CHECKPOINT
    assert (root / "loras-moved/x.safetensors").read_bytes() == LORA
    assert not (root / "loras-moved/y.safetensors").exists()
    assert bundle.read_state(state).active_bundle_id == "bundle-a"
    assert not (root / bundle.STAGING_DIR).exists()


def test_a_directory_swapped_before_its_walk_is_refused_before_anything_is_placed(s3, tree, installed):
    root, outside, state = tree
    second = _manifest(  # keeps x: nothing of models/loras is walked before the checkpoint downloads
        "bundle-b2",
        _asset("checkpoint", "base.safetensors", NEW_CHECKPOINT),
        _asset("lora", "x.safetensors", LORA),
        _asset("lora", "y.safetensors", NEW_LORA),
    )
    prefix = _publish(s3, second, [NEW_CHECKPOINT, LORA, NEW_LORA])

    def swap():  # while the checkpoint downloads, before the LoRA's directory is walked
        (root / "models" / "loras").rename(root / "loras-moved")
        (root / "models" / "loras").symlink_to(outside)

    hooked = DuringDownload(s3, second["assets"][0]["asset_s3_key"], swap)
    with pytest.raises(bundle.BundleError, match="models/loras is a symlink or not a directory"):
        bundle.Installer(hooked, root, bucket_owner=ACCOUNT, state_dir=state).apply(BUCKET, prefix)

    assert _files(outside) == {}
    assert (root / "models/checkpoints/base.safetensors").read_bytes() == CHECKPOINT


def test_a_stale_path_through_a_symlink_is_refused_before_any_download(s3, tree, installed):
    root, outside, state = tree
    (outside / "x.safetensors").write_bytes(b"root's cron job")
    (root / "models" / "loras").rename(root / "loras-moved")
    (root / "models" / "loras").symlink_to(outside)
    only_checkpoint = _manifest("bundle-c", _asset("checkpoint", "base.safetensors", NEW_CHECKPOINT))
    prefix = _publish(s3, only_checkpoint, [NEW_CHECKPOINT])
    downloads = []
    hooked = DuringDownload(s3, only_checkpoint["assets"][0]["asset_s3_key"], lambda: downloads.append(1))

    with pytest.raises(bundle.BundleError, match=r"models/loras/x\.safetensors: models/loras is a symlink"):
        bundle.Installer(hooked, root, bucket_owner=ACCOUNT, state_dir=state).apply(BUCKET, prefix)

    assert downloads == []  # refused before a byte was fetched
    assert (outside / "x.safetensors").read_bytes() == b"root's cron job"
    assert (root / "models/checkpoints/base.safetensors").read_bytes() == CHECKPOINT
    assert bundle.read_state(state).active_bundle_id == "bundle-a"


def test_the_staging_folder_is_roots_alone_and_a_planted_one_is_replaced(s3, tree, installed):
    root, outside, state = tree
    (root / bundle.STAGING_DIR).symlink_to(outside)  # planted by the service user
    second, prefix = _second(s3)
    modes = []
    hooked = DuringDownload(
        s3,
        second["assets"][0]["asset_s3_key"],
        lambda: modes.append(stat.S_IMODE((root / bundle.STAGING_DIR).lstat().st_mode)),
    )

    bundle.Installer(hooked, root, bucket_owner=ACCOUNT, state_dir=state).apply(BUCKET, prefix)

    assert modes == [0o700]
    assert _files(outside) == {}
    assert (root / "models/loras/y.safetensors").read_bytes() == NEW_LORA


def test_status_reads_roots_state_not_files_the_service_user_writes(s3, tree, installed):
    root, _, state = tree
    (root / ".active_bundle_id").write_text("forged\n")

    assert bundle.read_state(state).active_bundle_id == "bundle-a"
    assert not any(p.name.startswith(".active") for p in root.iterdir() if p.name != ".active_bundle_id")
    assert (state / bundle.ACTIVE_BUNDLE_FILE).read_text() == "bundle-a\n"


def test_an_asset_larger_than_its_declared_size_is_refused(s3, tree):
    root, _, state = tree
    big = {**_asset("checkpoint", "big.safetensors", CHECKPOINT), "size_bytes": 10}
    prefix = _publish(s3, _manifest("bundle-d", big), [CHECKPOINT])

    with pytest.raises(bundle.BundleError, match=f"is {len(CHECKPOINT)} bytes, the manifest says 10"):
        bundle.Installer(s3, root, bucket_owner=ACCOUNT, state_dir=state).apply(BUCKET, prefix)

    assert not (root / "models/checkpoints/big.safetensors").exists()


def test_a_manifest_over_the_caps_is_refused(s3, tree):
    root, _, state = tree
    many = [_asset("lora", f"l{n}.safetensors", LORA) for n in range(manifest.MAX_ASSETS + 1)]
    assert manifest.problems_of(_manifest("bundle-e", *many)) == [
        f"assets has {manifest.MAX_ASSETS + 1} entries; a bundle holds at most {manifest.MAX_ASSETS}"
    ]
    huge = json.dumps({**_manifest("bundle-f"), "name": "x" * manifest.MAX_MANIFEST_BYTES}).encode()
    s3.put_object(Bucket=BUCKET, Key="bundles/bundle-f/manifest.json", Body=huge)

    with pytest.raises(manifest.InvalidManifest, match="the manifest is over 1048576 bytes"):
        bundle.Installer(s3, root, bucket_owner=ACCOUNT, state_dir=state).apply(BUCKET, "bundles/bundle-f")
