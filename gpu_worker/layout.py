"""Where bundles and assets live in the models bucket (seed 004, "S3 layout").

Assets are content-addressed singletons (``assets/<kind>/<sha256>``); a bundle is only
a manifest (``bundles/<bundle_id>/manifest.json``) that references assets. The
``active_bundle`` SSM pointer holds the bundle *prefix* (``bundles/<bundle_id>``).
"""

from __future__ import annotations

MANIFEST_VERSION = 1
#: The ``active_bundle`` value of a fleet without a bundle (workers skip the sync).
NO_ACTIVE_BUNDLE = "none"
BUNDLES = "bundles/"

#: Asset kind -> directory (relative to the ComfyUI root) its files must land under.
KIND_TARGET_DIRS: dict[str, str] = {
    "checkpoint": "models/checkpoints/",
    "lora": "models/loras/",
    "vae": "models/vae/",
    "embedding": "models/embeddings/",
    "controlnet": "models/controlnet/",
    "custom_node": "custom_nodes/",
    "other": "models/other/",
}


def bundle_prefix(bundle_id: str) -> str:
    return f"{BUNDLES}{bundle_id}"


def bundle_id_of(prefix: str) -> str:
    """The bundle id in an ``active_bundle`` value ``bundles/<bundle_id>``."""
    bundle_id = prefix.strip().rstrip("/").removeprefix(BUNDLES)
    if not bundle_id or "/" in bundle_id or bundle_id == prefix.strip().rstrip("/"):
        raise ValueError(f"{prefix!r} is not a bundle prefix of the form {BUNDLES}<bundle_id>")
    return bundle_id


def manifest_key(prefix: str) -> str:
    """Key of a bundle's manifest, given the prefix stored in the active_bundle pointer."""
    return f"{prefix.rstrip('/')}/manifest.json"


def asset_key(kind: str, sha256: str) -> str:
    return f"assets/{kind}/{sha256}"
