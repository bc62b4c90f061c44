"""Install a model bundle under the ComfyUI root: the one installer used by the Packer
bake, by instance boot and by an SSM apply on a running node.

    python -m gpu_worker.bundle validate FILE_OR_S3_URI
    python -m gpu_worker.bundle apply --root /opt/comfyui --bucket BUCKET --prefix bundles/<id>
    python -m gpu_worker.bundle apply --root /opt/comfyui --bucket-parameter NAME --prefix-parameter NAME
    python -m gpu_worker.bundle status [--json]

``apply`` (as root) reads the manifest, validates it (:mod:`gpu_worker.manifest`; at most
1 MiB and 1000 assets), walks every path it will touch, the previous bundle's leftovers
included, and refuses a symlink anywhere on the way before anything changes. It then
downloads the content-addressed assets it lacks into a root-only staging folder inside
the root, never past an asset's declared ``size_bytes`` or the disk's free space, and
checks each sha256; only when every asset is there and verified does it move them into
place (a rename each through the directory's descriptor, the replaced files kept aside
until the end, so a failure restores the previous bundle), remove the previous bundle's
files the new one doesn't have, and record ``active_bundle_id`` and
``installed_bundle_paths`` in ``--state-dir`` (``/var/lib/bp-bundle``, out of the
``comfyui`` user's reach). The tree under the root belongs to that user and is handled as
hostile (:mod:`gpu_worker.tree`). An already active bundle costs no S3 call: the boot
smart-skip (seed 004) for an AMI baked with it.

Exit codes: 0 done (or nothing to do), 1 the install failed (previous bundle intact),
2 invalid manifest or arguments. Errors are one line each, never a traceback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_worker import manifest as manifests
from gpu_worker.layout import NO_ACTIVE_BUNDLE, bundle_id_of, manifest_key
from gpu_worker.tree import RootTree, UnsafePath

ACTIVE_BUNDLE_FILE = ".active_bundle_id"
INSTALLED_PATHS_FILE = ".installed_bundle_paths"
BAKED_BUNDLE_FILE = ".baked_bundle_id"
#: Root-owned and 0700, inside the root (renames into place stay on one filesystem).
STAGING_DIR = ".bundle-staging"
#: What the installer records lives outside the service user's tree: ``status`` reports
#: what root installed, not what the ``comfyui`` user wrote into a file.
DEFAULT_STATE_DIR = "/var/lib/bp-bundle"
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


def read_state(state_dir: Path) -> State:
    def text(name: str) -> str | None:
        path = state_dir / name
        return path.read_text().strip() or None if path.is_file() else None

    paths = text(INSTALLED_PATHS_FILE)
    return State(text(ACTIVE_BUNDLE_FILE), tuple(paths.splitlines()) if paths else (), text(BAKED_BUNDLE_FILE))


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(content)
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)


def _sha256_of(fd: int) -> str:
    digest = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


@dataclass
class _Placement:
    """An asset downloaded to ``staged`` (in the staging directory) for ``name`` in ``directory``."""

    target: str
    staged: str
    directory: int
    name: str


class Installer:
    """Installs bundles from the models bucket under one ComfyUI root (see :mod:`gpu_worker.tree`).
    Every read expects ``bucket_owner`` (the node's account) to own the bucket: one of the
    predictable name created by anyone else answers 403 instead of serving the node code."""

    def __init__(
        self,
        s3: Any,
        root: Path,
        log: Callable[[str], None] = print,
        *,
        bucket_owner: str,
        state_dir: Path = Path(DEFAULT_STATE_DIR),
    ) -> None:
        self.s3 = s3
        self.root = root
        self.bucket_owner = bucket_owner
        self.state_dir = state_dir
        self.log = log

    def _get(self, bucket: str, key: str) -> dict[str, Any]:
        return self.s3.get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=self.bucket_owner)

    def read_manifest(self, bucket: str, prefix: str) -> manifests.Manifest:
        key = manifest_key(prefix)
        body = self._get(bucket, key)["Body"].read(manifests.MAX_MANIFEST_BYTES + 1)
        if len(body) > manifests.MAX_MANIFEST_BYTES:
            raise manifests.InvalidManifest(
                f"s3://{bucket}/{key}", [f"the manifest is over {manifests.MAX_MANIFEST_BYTES} bytes"]
            )
        return manifests.loads(body, f"s3://{bucket}/{key}")

    def _download(self, bucket: str, asset: manifests.Asset, staging: int, name: str) -> None:
        """Stream the asset into the staging directory, never past its declared size nor
        past the free space of the root's filesystem, and check its sha256."""
        where = f"s3://{bucket}/{asset.asset_s3_key}"
        answer = self._get(bucket, asset.asset_s3_key)
        length = answer.get("ContentLength")
        limit = asset.size_bytes if asset.size_bytes is not None else length
        if asset.size_bytes is not None and length is not None and length != asset.size_bytes:
            raise BundleError(f"{where} is {length} bytes, the manifest says {asset.size_bytes}")
        free = os.statvfs(staging).f_bavail * os.statvfs(staging).f_frsize
        if limit is not None and limit > free:
            raise BundleError(f"{where} needs {limit} bytes, the disk has {free} free")
        digest, written = hashlib.sha256(), 0
        with RootTree.open_file(staging, name, create=True) as fd:
            for chunk in answer["Body"].iter_chunks(CHUNK):
                written += len(chunk)
                if limit is not None and written > limit:
                    raise BundleError(f"{where} is larger than the {limit} bytes it was declared or sent as")
                digest.update(chunk)
                os.write(fd, chunk)
        if digest.hexdigest() != asset.sha256:
            raise BundleError(f"{where}: sha256 is {digest.hexdigest()}, the manifest says {asset.sha256}")

    def apply(self, bucket: str, prefix: str, *, record_baked: bool = False) -> InstallResult:
        bundle_id = bundle_id_of(prefix)
        state = read_state(self.state_dir)
        if state.active_bundle_id == bundle_id and self._all_installed(state.installed_paths):
            result = InstallResult(bundle_id, skipped=True)
        else:
            bundle = self.read_manifest(bucket, prefix)
            if bundle.bundle_id != bundle_id:
                raise manifests.InvalidManifest(
                    manifest_key(prefix), [f"bundle_id is {bundle.bundle_id}, but it is stored under {prefix}"]
                )
            with RootTree(self.root) as tree:
                result = self._install(tree, bucket, bundle, state)
        if record_baked:
            _write_atomically(self.state_dir / BAKED_BUNDLE_FILE, bundle_id + "\n")
        return result

    def _all_installed(self, paths: tuple[str, ...]) -> bool:
        try:
            with RootTree(self.root) as tree:
                return all(self._regular_file(tree, path) for path in paths)
        except UnsafePath:
            return False

    @staticmethod
    def _regular_file(tree: RootTree, path: str) -> bool:
        found = tree.parent(path, create=False)
        return found is not None and tree.kind(*found) == "file"

    def _refuse_unsafe(self, call: Callable[[], Any], path: str) -> Any:
        try:
            return call()
        except UnsafePath as error:
            raise BundleError(f"{path}: {error}, which could lead out of {self.root}: refused") from None

    def _install(self, tree: RootTree, bucket: str, bundle: manifests.Manifest, state: State) -> InstallResult:
        result = InstallResult(bundle.bundle_id)
        wanted = {asset.target_path for asset in bundle.assets}
        # 1. every path this install will touch is walked first, the previous bundle's
        #    leftovers included: a refusal comes before anything is downloaded or placed
        stale = []
        for path in sorted(set(state.installed_paths) - wanted):
            found = self._refuse_unsafe(lambda p=path: tree.parent(p, create=False), path)
            if found is not None and tree.kind(*found) in ("file", "symlink"):
                stale.append((path, *found))
        staging = tree.make_private_directory(STAGING_DIR)
        try:
            placements = self._stage(tree, bucket, bundle, staging, result)
            moved = tree.moved()
            if moved:
                raise BundleError(
                    f"{', '.join(moved)} changed during the install (moved, or swapped for a symlink): refused"
                )
            # 2. renames only, through the directories' descriptors; replaced files wait
            #    in staging until the bundle is complete
            self._place(placements, staging)
        finally:
            tree.remove_tree(STAGING_DIR)
        # 3. the previous bundle's leftovers (unlinked through their directory: a
        #    symlink is removed, never followed), then the record of what is installed
        for path, directory, name in stale:
            os.unlink(name, dir_fd=directory)
            result.removed.append(path)
        _write_atomically(self.state_dir / INSTALLED_PATHS_FILE, "".join(f"{path}\n" for path in sorted(wanted)))
        _write_atomically(self.state_dir / ACTIVE_BUNDLE_FILE, bundle.bundle_id + "\n")
        return result

    def _stage(
        self, tree: RootTree, bucket: str, bundle: manifests.Manifest, staging: int, result: InstallResult
    ) -> list[_Placement]:
        """Everything downloaded and verified before anything is touched."""
        placements: list[_Placement] = []
        staged_by_sha: dict[str, str] = {}
        for number, asset in enumerate(bundle.assets):
            directory, name = self._refuse_unsafe(
                lambda a=asset: tree.parent(a.target_path, create=True), asset.target_path
            )
            if tree.kind(directory, name) == "file":
                with RootTree.open_file(directory, name) as fd:
                    if _sha256_of(fd) == asset.sha256:
                        result.kept.append(asset.target_path)
                        continue
            staged = f"asset-{number}"
            if asset.sha256 in staged_by_sha:
                with (
                    RootTree.open_file(staging, staged_by_sha[asset.sha256]) as source,
                    RootTree.open_file(staging, staged, create=True) as copy,
                ):
                    while chunk := os.read(source, CHUNK):
                        os.write(copy, chunk)
            else:
                self.log(f"downloading {asset.asset_s3_key} -> {asset.target_path}")
                self._download(bucket, asset, staging, staged)
                staged_by_sha[asset.sha256] = staged
            placements.append(_Placement(asset.target_path, staged, directory, name))
            result.downloaded.append(asset.target_path)
        return placements

    @staticmethod
    def _place(placements: list[_Placement], staging: int) -> None:
        done: list[tuple[_Placement, str | None]] = []
        try:
            for number, placement in enumerate(placements):
                backup = None
                if RootTree.kind(placement.directory, placement.name) is not None:
                    backup = f"previous-{number}"
                    os.replace(placement.name, backup, src_dir_fd=placement.directory, dst_dir_fd=staging)
                os.replace(placement.staged, placement.name, src_dir_fd=staging, dst_dir_fd=placement.directory)
                done.append((placement, backup))
        except OSError:
            for placement, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, placement.name, src_dir_fd=staging, dst_dir_fd=placement.directory)
                else:
                    os.unlink(placement.name, dir_fd=placement.directory)
            raise


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _validate(args: argparse.Namespace) -> int:
    source = args.manifest
    if source.startswith("s3://"):
        bucket, key = _s3_location(source)
        text = _client("s3").get_object(Bucket=bucket, Key=key, ExpectedBucketOwner=_own_account())["Body"].read()
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
    installer = Installer(_client("s3"), Path(args.root), bucket_owner=_own_account(), state_dir=Path(args.state_dir))
    result = installer.apply(bucket, prefix, record_baked=args.record_baked)
    print(result.summary())
    return 0


def _status(args: argparse.Namespace) -> int:
    state = read_state(Path(args.state_dir))
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


def _own_account() -> str:  # GetCallerIdentity needs no permission
    return _client("sts").get_caller_identity()["Account"]


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
    apply.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="where the installer records what it installed")
    apply.set_defaults(handler=_apply)
    status = commands.add_parser("status", help="what the installer installed (its state directory)")
    status.add_argument("--state-dir", default=DEFAULT_STATE_DIR, help="where the installer records what it installed")
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
