"""A bundle checked where it lives: manifest and assets in the models bucket."""

import json
import re

import pytest

from devstack.baseline import sample_manifest
from include.bundles import BundleIncomplete, check_bundle


def _size_of(objects):
    return lambda key: len(objects[key]) if key in objects else None


def test_check_bundle_names_an_invalid_manifest_missing_assets_and_wrong_sizes():
    manifest = sample_manifest("b-7")
    objects = {"bundles/b-7/manifest.json": json.dumps(manifest).encode()}
    objects.update({asset["asset_s3_key"]: b"x" * asset["size_bytes"] for asset in manifest["assets"][1:]})
    truncated = manifest["assets"][2]
    objects[truncated["asset_s3_key"]] = b"x"

    with pytest.raises(BundleIncomplete) as incomplete:
        check_bundle(objects.__getitem__, _size_of(objects), "bp-models-1", "b-7")
    message = str(incomplete.value)
    assert re.search(r"assets/checkpoint/[0-9a-f]{64} is missing", message)
    assert f"{truncated['asset_s3_key']} is 1 bytes, the manifest says {truncated['size_bytes']}" in message

    manifest["assets"][0]["target_path"] = "custom_nodes/evil.py"
    objects["bundles/b-7/manifest.json"] = json.dumps(manifest).encode()
    with pytest.raises(BundleIncomplete, match="must land under models/checkpoints/"):
        check_bundle(objects.__getitem__, _size_of(objects), "bp-models-1", "b-7")


def test_a_manifest_over_the_cap_is_refused_before_it_is_read():
    objects = {"bundles/b-8/manifest.json": b" " * (1024 * 1024 + 1)}

    def never_read(key):
        raise AssertionError(f"{key} was read")

    with pytest.raises(BundleIncomplete, match="is over 1048576 bytes"):
        check_bundle(never_read, _size_of(objects), "bp-models-1", "b-8")
