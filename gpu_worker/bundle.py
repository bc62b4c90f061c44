"""Install a model bundle under the ComfyUI root: the one installer used by the Packer
bake, by instance boot and by an SSM apply on a running node.

    python -m gpu_worker.bundle validate FILE_OR_S3_URI
    python -m gpu_worker.bundle apply --root /opt/comfyui --bucket BUCKET --prefix bundles/<id>
    python -m gpu_worker.bundle apply --root /opt/comfyui --bucket-parameter NAME --prefix-parameter NAME
    python -m gpu_worker.bundle status --root /opt/comfyui

``apply`` reads the manifest, validates it (:mod:`gpu_worker.manifest`), downloads the
content-addressed assets it lacks into a staging folder *inside* the root and checks
each sha256; only when every asset is there and verified does it move them into place
(a rename each, the replaced files kept aside until the end, so a failure restores
the previous bundle), remove the previous bundle's files the new one doesn't have, and
record ``.active_bundle_id`` and ``.installed_bundle_paths``. When the bundle is
already active it does nothing, not even an S3 call: that is the boot smart-skip
(seed 004) for an AMI baked with the active bundle.

Exit codes: 0 done (or nothing to do), 1 the install failed (previous bundle intact),
2 invalid manifest or arguments. Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_worker import manifest as manifests
from gpu_worker.layout import NO_ACTIVE_BUNDLE, bundle_id_of, manifest_key

ACTIVE_BUNDLE_FILE = ".active_bundle_id"
INSTALLED_PATHS_FILE = ".installed_bundle_paths"
BAKED_BUNDLE_FILE = ".baked_bundle_id"
STAGING_DIR = ".bundle-staging"
CHUNK = 1024 * 1024


class BundleError(RuntimeError):
    """The bundle could not be installed; the previous one is still in place."""


@dataclass
class InstallResult:
    bundle_id: str
    skipped: bool = False
    downloaded: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.skipped:
            return f"bundle {self.bundle_id} is already active: nothing to do"
        return (
            f"bundle {self.bundle_id} active: {len(self.downloaded)} file(s) installed, "
            f"{len(self.kept)} already in place, {len(self.removed)} of the previous bundle removed"
        )


@dataclass(frozen=True)
class State:
    active_bundle_id: str | None
    installed_paths: tuple[str, ...]
    baked_bundle_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "active_bundle_id": self.active_bundle_id,
            "baked_bundle_id": self.baked_bundle_id,
            "installed_paths": list(self.installed_paths),
        }


def read_state(root: Path) -> State:
    def text(name: str) -> str | None:
        path = root / name
        return path.read_text().strip() or None if path.is_file() else None

    paths = text(INSTALLED_PATHS_FILE)
    return State(text(ACTIVE_BUNDLE_FILE), tuple(paths.splitlines()) if paths else (), text(BAKED_BUNDLE_FILE))


def _write_atomically(path: Path, content: str) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.replace(temporary, path)


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Installer:
    """Installs bundles from the models bucket under one ComfyUI root."""

    def __init__(self, s3: Any, root: Path, log: Callable[[str], None] = print) -> None:
        self.s3 = s3
        self.root = root
        self.log = log

    def _destination(self, target: str) -> Path:
        """Where ``target`` lands; refused when an existing symlink would carry it out of the root."""
        root = self.root.resolve()
        destination = self.root / target
        if not destination.resolve().is_relative_to(root):
            raise BundleError(f"{target} resolves outside {root} through a symlink: refused")
        return destination

    def read_manifest(self, bucket: str, prefix: str) -> manifests.Manifest:
        key = manifest_key(prefix)
        body = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return manifests.loads(body, f"s3://{bucket}/{key}")

    def _download(self, bucket: str, asset: manifests.Asset, staged: Path) -> None:
        digest = hashlib.sha256()
        body = self.s3.get_object(Bucket=bucket, Key=asset.asset_s3_key)["Body"]
        with staged.open("wb") as handle:
            for chunk in body.iter_chunks(CHUNK):
                digest.update(chunk)
                handle.write(chunk)
        if digest.hexdigest() != asset.sha256:
            raise BundleError(
                f"s3://{bucket}/{asset.asset_s3_key}: sha256 is {digest.hexdigest()}, the manifest says {asset.sha256}"
            )

    def apply(self, bucket: str, prefix: str, *, record_baked: bool = False) -> InstallResult:
        bundle_id = bundle_id_of(prefix)
        state = read_state(self.root)
        if state.active_bundle_id == bundle_id and all((self.root / p).is_file() for p in state.installed_paths):
            result = InstallResult(bundle_id, skipped=True)
        else:
            bundle = self.read_manifest(bucket, prefix)
            if bundle.bundle_id != bundle_id:
                raise manifests.InvalidManifest(
                    manifest_key(prefix), [f"bundle_id is {bundle.bundle_id}, but it is stored under {prefix}"]
                )
            result = self._install(bucket, bundle, state)
        if record_baked:
            _write_atomically(self.root / BAKED_BUNDLE_FILE, bundle_id + "\n")
        return result

    def _install(self, bucket: str, bundle: manifests.Manifest, state: State) -> InstallResult:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / STAGING_DIR
        shutil.rmtree(staging, ignore_errors=True)  # what an interrupted run left behind
        staging.mkdir()
        result = InstallResult(bundle.bundle_id)
        try:
            # 1. everything downloaded and verified before anything is touched
            placements: list[tuple[Path, Path]] = []
            staged_by_sha: dict[str, Path] = {}
            for number, asset in enumerate(bundle.assets):
                destination = self._destination(asset.target_path)
                if destination.is_file() and not destination.is_symlink() and _sha256_of(destination) == asset.sha256:
                    result.kept.append(asset.target_path)
                    continue
                staged = staging / f"asset-{number}"
                if asset.sha256 in staged_by_sha:
                    shutil.copyfile(staged_by_sha[asset.sha256], staged)
                else:
                    self.log(f"downloading {asset.asset_s3_key} -> {asset.target_path}")
                    self._download(bucket, asset, staged)
                    staged_by_sha[asset.sha256] = staged
                placements.append((staged, destination))
                result.downloaded.append(asset.target_path)
            # 2. renames only; replaced files wait in staging until the bundle is complete
            self._place(placements, staging)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        # 3. the previous bundle's leftovers, then the record of what is installed
        wanted = {asset.target_path for asset in bundle.assets}
        for stale in sorted(set(state.installed_paths) - wanted):
            path = self._destination(stale)
            if path.is_file() or path.is_symlink():
                path.unlink()
                result.removed.append(stale)
        _write_atomically(self.root / INSTALLED_PATHS_FILE, "".join(f"{path}\n" for path in sorted(wanted)))
        _write_atomically(self.root / ACTIVE_BUNDLE_FILE, bundle.bundle_id + "\n")
        return result

    @staticmethod
    def _place(placements: list[tuple[Path, Path]], staging: Path) -> None:
        done: list[tuple[Path, Path | None]] = []
        try:
            for number, (staged, destination) in enumerate(placements):
                destination.parent.mkdir(parents=True, exist_ok=True)
                backup = None
                if destination.exists() or destination.is_symlink():
                    backup = staging / f"previous-{number}"
                    os.replace(destination, backup)
                os.replace(staged, destination)
                done.append((destination, backup))
        except OSError:
            for destination, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, destination)
                else:
                    destination.unlink(missing_ok=True)
            raise


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _validate(args: argparse.Namespace) -> int:
    source = args.manifest
    if source.startswith("s3://"):
        bucket, key = _s3_location(source)
        text = _client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        text = Path(source).read_bytes()
    bundle = manifests.loads(text, source)
    print(f"{source}: valid manifest v1, bundle {bundle.bundle_id}, {len(bundle.assets)} asset(s)")
    return 0


def _apply(args: argparse.Namespace) -> int:
    bucket, prefix = args.bucket, args.prefix
    if args.bucket_parameter or args.prefix_parameter:
        ssm = _client("ssm")
        bucket = bucket or ssm.get_parameter(Name=args.bucket_parameter)["Parameter"]["Value"]
        prefix = prefix or ssm.get_parameter(Name=args.prefix_parameter)["Parameter"]["Value"]
    if not bucket or not prefix:
        raise _UsageError("apply needs --bucket and --prefix, or the SSM parameters that hold them")
    if prefix.strip() == NO_ACTIVE_BUNDLE:
        print("no active bundle for this fleet: nothing to install")
        return 0
    result = Installer(_client("s3"), Path(args.root)).apply(bucket, prefix, record_baked=args.record_baked)
    print(result.summary())
    return 0


def _status(args: argparse.Namespace) -> int:
    state = read_state(Path(args.root))
    if args.json:
        print(json.dumps(state.as_dict()))
    else:
        print(f"active bundle: {state.active_bundle_id or 'none'}")
        print(f"baked bundle:  {state.baked_bundle_id or 'none'}")
        print(f"installed files: {len(state.installed_paths)}")
    return 0


class _UsageError(ValueError):
    pass


def _client(service: str) -> Any:
    import boto3  # imported here: validate of a local file needs no AWS at all

    return boto3.client(service)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gpu_worker.bundle", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check a manifest (file or s3:// URI)")
    validate.add_argument("manifest")
    validate.set_defaults(handler=_validate)
    apply = commands.add_parser("apply", help="install a bundle under the ComfyUI root")
    apply.add_argument("--root", default="/opt/comfyui")
    apply.add_argument("--bucket", help="the models bucket")
    apply.add_argument("--prefix", help="the bundle prefix, bundles/<bundle_id> (or 'none')")
    apply.add_argument("--bucket-parameter", help="SSM parameter holding the models bucket")
    apply.add_argument("--prefix-parameter", help="SSM parameter holding the active bundle prefix")
    apply.add_argument("--record-baked", action="store_true", help="also record the bundle as baked into the image")
    apply.set_defaults(handler=_apply)
    status = commands.add_parser("status", help="what is installed under the root")
    status.add_argument("--root", default="/opt/comfyui")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except manifests.InvalidManifest as error:
        print(f"invalid manifest {error.source}:", file=sys.stderr)
        for problem in error.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    except _UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BundleError as error:
        print(f"error: {error}; nothing was changed, the previous bundle is still installed", file=sys.stderr)
        return 1
    except Exception as error:  # the CLI's promise: one line, never a traceback
        print(f"error: {type(error).__name__}: {error}; the previous bundle is still installed", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
