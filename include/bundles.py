"""A model bundle where it lives: its manifest and its assets in the models bucket.

A bundle travels through the pipeline as its id; the ``bundles/<id>`` prefix that the
``active_bundle`` pointer holds and the manifest key are made from the id here and in
:mod:`gpu_worker.layout` only, at the edge where SSM or S3 is called.
"""

from __future__ import annotations

from collections.abc import Callable

from gpu_worker import layout, manifest


class BundleIncomplete(RuntimeError):
    """The manifest is missing or invalid, or assets are missing or of the wrong size."""


def check_bundle(
    read_object: Callable[[str], bytes], object_size: Callable[[str], int | None], bucket: str, bundle_id: str
) -> manifest.Manifest:
    """The bundle's manifest, valid, with every asset in the models bucket at the size the
    manifest gives (HEAD only) - checked before a build instance is paid for or a fleet's
    pointer moves. ``object_size`` is None for a missing key. Raises
    :class:`BundleIncomplete` listing every problem."""
    prefix = layout.bundle_prefix(bundle_id)
    key = layout.manifest_key(prefix)
    source = f"s3://{bucket}/{key}"
    manifest_size = object_size(key)
    if manifest_size is None:
        raise BundleIncomplete(f"the bundle's manifest {source} does not exist")
    if manifest_size > manifest.MAX_MANIFEST_BYTES:
        raise BundleIncomplete(f"the bundle's manifest {source} is over {manifest.MAX_MANIFEST_BYTES} bytes")
    try:
        bundle = manifest.loads(read_object(key), source)
    except manifest.InvalidManifest as error:
        raise BundleIncomplete(f"{source} is not a valid manifest v1: " + "; ".join(error.problems)) from None
    problems = [] if bundle.bundle_id == bundle_id else [f"bundle_id {bundle.bundle_id} is not {bundle_id}"]
    for asset in bundle.assets:
        size = object_size(asset.asset_s3_key)
        if size is None:
            problems.append(f"asset s3://{bucket}/{asset.asset_s3_key} is missing")
        elif asset.size_bytes is not None and size != asset.size_bytes:
            problems.append(
                f"asset s3://{bucket}/{asset.asset_s3_key} is {size} bytes, the manifest says {asset.size_bytes}"
            )
    if problems:
        raise BundleIncomplete(f"the bundle {prefix} is incomplete: " + "; ".join(problems))
    return bundle
