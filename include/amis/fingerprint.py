"""The fingerprint of what goes into a GPU image: two builds with the same one would
produce the same image, so the second is skipped and the first image reused.

What goes in: the base image the build starts from, the bundle's manifest (it names
every asset by its sha256), the Packer templates and scripts, and the ``gpu_worker``
package (its version and its source: a change without a version bump still counts).

The base image of a bake is the *root* base of the image it starts from (the image's
``base_image`` tag), not that image itself: baking bundle B onto an image that already
carries a bake of B replaces B with B, so it fingerprints like the bake it repeats. A
base build starts from the newest Ubuntu 22.04 image Canonical publishes (the template's
filter); when that lookup finds nothing, the build has no fingerprint and always runs.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gpu_worker
from include.naming.platform import tags_of

#: the tag that carries the fingerprint on every image, and the root base image's
FINGERPRINT_TAG = "input_fingerprint"
BASE_IMAGE_TAG = "base_image"
#: what the Packer template's ``amazon-ami`` data source looks for (base builds)
UBUNTU_OWNER = "099720109477"  # Canonical
UBUNTU_FILTERS = {
    "name": "ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-*",
    "root-device-type": "ebs",
    "virtualization-type": "hvm",
}
_WORKER_DIR = Path(gpu_worker.__file__).resolve().parent


def tree_digest(root: Path, patterns: Iterable[str]) -> str:
    """sha256 over the files under ``root`` matching ``patterns``: their paths and bytes."""
    digest = hashlib.sha256()
    files = sorted({path for pattern in patterns for path in root.glob(pattern) if path.is_file()})
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def packer_digest(packer_dir: Path) -> str:
    """The templates and the scripts they run (the README changes no image)."""
    return tree_digest(packer_dir, ("*.pkr.hcl", "scripts/**/*"))


def worker_version() -> str:
    return tomllib.loads((_WORKER_DIR / "pyproject.toml").read_text())["project"]["version"]


def worker_digest() -> str:
    return tree_digest(_WORKER_DIR, ("*.py", "pyproject.toml"))


def root_base_image(image_id: str, tags: Mapping[str, str]) -> str:
    """The base an image was built on: its own ``base_image`` tag, or the image itself
    when it has none (a base image, or one made outside this DAG)."""
    return tags.get(BASE_IMAGE_TAG) or image_id


def newest_image(images: Iterable[Mapping[str, object]]) -> str | None:
    """The newest of DescribeImages' answer (what Packer's ``most_recent = true`` picks)."""
    ordered = sorted(images, key=lambda image: str(image.get("CreationDate", "")))
    return str(ordered[-1]["ImageId"]) if ordered else None


@dataclass(frozen=True)
class Fingerprint:
    mode: str
    base_image: str
    bundle_manifest_sha256: str
    packer_sha256: str
    gpu_worker_version: str
    gpu_worker_sha256: str

    @property
    def digest(self) -> str:
        """sha256 of the inputs (the tag value; 64 hex characters fit EC2's 256)."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    def as_dict(self) -> dict[str, str]:
        return {**asdict(self), "digest": self.digest}


def fingerprint(mode: str, base_image: str, manifest: bytes | None, packer_dir: Path) -> Fingerprint:
    return Fingerprint(
        mode=mode,
        base_image=base_image,
        bundle_manifest_sha256=hashlib.sha256(manifest).hexdigest() if manifest is not None else "none",
        packer_sha256=packer_digest(packer_dir),
        gpu_worker_version=worker_version(),
        gpu_worker_sha256=worker_digest(),
    )


def same_inputs(images: Iterable[Mapping[str, Any]], digest: str, revoked_tag: str) -> tuple[str | None, str | None]:
    """Among DescribeImages' answer, the images carrying ``digest``: the newest available,
    unrevoked one (to reuse), and the newest revoked one (to say why it is not reused)."""
    matching = [(image, tags_of(image)) for image in images if tags_of(image).get(FINGERPRINT_TAG) == digest]
    reusable = [image for image, tags in matching if image.get("State") == "available" and revoked_tag not in tags]
    return newest_image(reusable), newest_image(image for image, tags in matching if revoked_tag in tags)
