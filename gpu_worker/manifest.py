"""Bundle manifest v1 (seed 004) and every rule a manifest must follow before a byte of
it reaches a GPU instance.

A manifest decides which files land where under the ComfyUI root, and ComfyUI
*executes* whatever is under ``custom_nodes/``: a manifest that puts a checkpoint
there, or a path that climbs out of the root, is an attack, not a typo. Each rule
broken is reported as one readable line; nothing here raises on bad input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from gpu_worker.layout import KIND_TARGET_DIRS, MANIFEST_VERSION, asset_key

SHA256 = re.compile(r"[0-9a-f]{64}")
#: A bundle id becomes part of S3 keys and of state files: a conservative charset.
BUNDLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ACTIONS = ("copy",)
#: A manifest is a list of references: a bigger one is a mistake or an attack on the node.
MAX_MANIFEST_BYTES = 1024 * 1024
MAX_ASSETS = 1000


@dataclass(frozen=True)
class Asset:
    kind: str
    sha256: str
    asset_s3_key: str
    target_path: str
    #: Optional in manifest v1 (the seed's example omits it); checked against S3 when given.
    size_bytes: int | None = None


@dataclass(frozen=True)
class Manifest:
    bundle_id: str
    name: str
    assets: tuple[Asset, ...]


class InvalidManifest(ValueError):
    """The manifest breaks rules; ``problems`` holds one line per broken rule."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def target_problem(target: Any, kind: Any) -> str | None:
    """Why ``target`` is not a safe install path for an asset of ``kind``, or None."""
    if not isinstance(target, str) or not target:
        return "target_path must be a non-empty string"
    if "\x00" in target:
        return "target_path contains a NUL byte"
    if "\\" in target:
        return "target_path contains a backslash"
    if target.startswith("/"):
        return "target_path is absolute"
    parts = target.split("/")
    if ".." in parts:
        return "target_path contains '..'"
    if any(part in ("", ".") for part in parts):
        return "target_path has an empty or '.' component"
    directory = KIND_TARGET_DIRS.get(kind) if isinstance(kind, str) else None
    if directory is not None and not (target.startswith(directory) and len(target) > len(directory)):
        return f"a {kind} must land under {directory}, not at {target}"
    return None


def problems_of(data: Any) -> list[str]:
    """Every rule ``data`` (a parsed manifest) breaks, one line each; [] when valid."""
    if not isinstance(data, dict):
        return ["the manifest must be a JSON object"]
    problems = []
    if data.get("manifest_version") != MANIFEST_VERSION:
        problems.append(f"manifest_version must be {MANIFEST_VERSION}, not {data.get('manifest_version')!r}")
    bundle_id = data.get("bundle_id")
    if not isinstance(bundle_id, str) or not BUNDLE_ID.fullmatch(bundle_id):
        problems.append(f"bundle_id {bundle_id!r} must be 1-128 letters, digits, '.', '_' or '-'")
    assets = data.get("assets")
    if not isinstance(assets, list):
        return [*problems, "assets must be a list"]
    if len(assets) > MAX_ASSETS:
        return [*problems, f"assets has {len(assets)} entries; a bundle holds at most {MAX_ASSETS}"]
    seen_targets: dict[str, int] = {}
    for number, asset in enumerate(assets):
        where = f"assets[{number}]"
        if not isinstance(asset, dict):
            problems.append(f"{where} must be an object")
            continue
        kind, sha = asset.get("kind"), asset.get("sha256")
        if kind not in KIND_TARGET_DIRS:
            problems.append(f"{where}: kind {kind!r} is not one of {', '.join(KIND_TARGET_DIRS)}")
        if not isinstance(sha, str) or not SHA256.fullmatch(sha):
            problems.append(f"{where}: sha256 must be 64 lowercase hex characters")
        elif kind in KIND_TARGET_DIRS and asset.get("asset_s3_key") != asset_key(kind, sha):
            problems.append(f"{where}: asset_s3_key must be {asset_key(kind, sha)}, not {asset.get('asset_s3_key')!r}")
        size = asset.get("size_bytes")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
            problems.append(f"{where}: size_bytes must be a whole number of bytes, not {size!r}")
        if asset.get("action") not in ACTIONS:
            problems.append(f"{where}: action {asset.get('action')!r} is not supported (only copy)")
        target = asset.get("target_path")
        problem = target_problem(target, kind)
        if problem:
            problems.append(f"{where}: {problem}")
        elif target in seen_targets:
            problems.append(f"{where}: target_path {target} is also the target of assets[{seen_targets[target]}]")
        else:
            seen_targets[target] = number
    return problems


def parse(data: Any, source: str) -> Manifest:
    """A validated :class:`Manifest`, or :class:`InvalidManifest` naming every problem."""
    problems = problems_of(data)
    if problems:
        raise InvalidManifest(source, problems)
    return Manifest(
        bundle_id=data["bundle_id"],
        name=str(data.get("name", "")),
        assets=tuple(
            Asset(a["kind"], a["sha256"], a["asset_s3_key"], str(PurePosixPath(a["target_path"])), a.get("size_bytes"))
            for a in data["assets"]
        ),
    )


def loads(text: str | bytes, source: str) -> Manifest:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidManifest(source, [f"not valid JSON: {error}"]) from None
    return parse(data, source)
