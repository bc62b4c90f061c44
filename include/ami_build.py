"""What the ``gpu_ami_build_and_bake`` DAG decides, as plain Python.

It replaces two workflows (seed 004): ``build-ami.yml`` built a base image from Ubuntu,
``bake-ami.yml`` baked the fleet's active bundle into its current image, resolving the
models bucket, the active bundle and the Packer instance profile from SSM. Here one
request names the fleet and a mode:

* ``base``: Ubuntu 22.04 + driver + ComfyUI + worker, no bundle;
* ``bake``: the fleet's current image + its active bundle;
* ``base_and_bake``: a fresh base with the active bundle, in one build.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpu_worker import manifest
from gpu_worker.layout import NO_ACTIVE_BUNDLE, bundle_id_of, manifest_key
from include import pointers, resource_names, ssm_paths

MODES = ("base", "bake", "base_and_bake")
#: An EC2 instance type: family, optional generation/attributes, size (g4dn.xlarge, g5.12xlarge).
INSTANCE_TYPE_PATTERN = r"^[a-z][a-z0-9-]*\.[a-z0-9]+$"
PACKER_DIR = Path(__file__).resolve().parents[1] / "packer"


class InvalidRequest(ValueError):
    """The DAG params are not a build that can run; nothing was called."""


class MissingInputs(RuntimeError):
    """The platform lacks something the build needs (an SSM value, an image, a bundle)."""


@dataclass(frozen=True)
class BuildRequest:
    fleet_stage: str
    fleet_slug: str
    mode: str
    instance_type: str
    start_instance_refresh: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BuildRequest:
        try:
            stage = ssm_paths.check_fleet_stage(params.get("fleet_stage"))
            slug = ssm_paths.check_fleet_slug(params.get("fleet_slug"))
        except ssm_paths.InvalidFleetName as error:
            raise InvalidRequest(str(error)) from None
        mode = params.get("mode")
        if mode not in MODES:
            raise InvalidRequest(f"mode {mode!r} is not one of {', '.join(MODES)}")
        instance_type = params.get("instance_type")
        if not isinstance(instance_type, str) or not re.fullmatch(INSTANCE_TYPE_PATTERN, instance_type):
            raise InvalidRequest(f"instance_type {instance_type!r} is not an EC2 instance type like g4dn.xlarge")
        refresh = params.get("start_instance_refresh")
        if not isinstance(refresh, bool):
            raise InvalidRequest(f"start_instance_refresh must be true or false, not {refresh!r}")
        return cls(stage, slug, mode, instance_type, refresh)

    @property
    def bakes_bundle(self) -> bool:
        return self.mode != "base"

    @property
    def needs_approval(self) -> bool:
        """Production images are promoted only after a person approves in the Airflow UI."""
        return self.fleet_stage == "production"

    @property
    def ami_parameter(self) -> str:
        return ssm_paths.fleet_ami(self.fleet_stage, self.fleet_slug)

    @property
    def auto_scaling_group(self) -> str:
        return resource_names.fleet_asg(self.fleet_stage, self.fleet_slug)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class BuildInputs:
    """What SSM said, read once at the start of the run."""

    models_bucket: str
    bundle_prefix: str
    instance_profile: str
    current_ami: str | None
    current_ami_version: int

    @property
    def bundle_id(self) -> str:
        return NO_ACTIVE_BUNDLE if self.bundle_prefix == NO_ACTIVE_BUNDLE else bundle_id_of(self.bundle_prefix)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bundle_id": self.bundle_id}


def resolve_inputs(read: Callable[[str], dict[str, Any] | None], request: BuildRequest) -> BuildInputs:
    """Read the build's inputs from SSM the way bake-ami.yml did; ``read`` returns a
    parameter (``Value``, ``Version``) or None."""

    def value(name: str) -> str:
        parameter = read(name)
        if parameter is None or not parameter["Value"].strip():
            raise MissingInputs(f"SSM parameter {name} is missing or empty")
        return parameter["Value"].strip()

    current = read(request.ami_parameter)
    inputs = BuildInputs(
        models_bucket=value(ssm_paths.models_bucket()),
        bundle_prefix=(
            value(ssm_paths.active_bundle(request.fleet_stage, request.fleet_slug))
            if request.bakes_bundle
            else NO_ACTIVE_BUNDLE
        ),
        instance_profile=value(ssm_paths.packer_instance_profile()),
        current_ami=current["Value"] if current else None,
        current_ami_version=current["Version"] if current else 0,
    )
    if request.bakes_bundle and inputs.bundle_prefix == NO_ACTIVE_BUNDLE:
        raise MissingInputs(
            f"{request.fleet_stage}/{request.fleet_slug} has no active bundle "
            f"({ssm_paths.active_bundle(request.fleet_stage, request.fleet_slug)} is {NO_ACTIVE_BUNDLE!r}): "
            "there is nothing to bake; activate a bundle or build mode=base"
        )
    if request.bakes_bundle:
        try:
            bundle_id_of(inputs.bundle_prefix)
        except ValueError as error:
            raise MissingInputs(
                f"{ssm_paths.active_bundle(request.fleet_stage, request.fleet_slug)}: {error}"
            ) from None
    if request.mode == "bake" and not inputs.current_ami:
        raise MissingInputs(
            f"mode=bake starts from the fleet's current image, but {request.ami_parameter} is not set: "
            "build mode=base_and_bake first"
        )
    return inputs


def git_sha() -> str:
    """The commit the DAGs run from: ``BP_GIT_SHA`` (set by the image build), else git."""
    if os.environ.get("BP_GIT_SHA"):
        return os.environ["BP_GIT_SHA"]
    git = shutil.which("git")
    if git is None:
        return "unknown"
    result = subprocess.run(
        [git, "rev-parse", "--short=12", "HEAD"], cwd=PACKER_DIR, capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def packer_variables(request: BuildRequest, inputs: BuildInputs, *, run_id: str, region: str) -> dict[str, str]:
    """The ``-var`` values for ``packer/comfyui-worker.pkr.hcl``."""
    return {
        "aws_region": region,
        "fleet_stage": request.fleet_stage,
        "fleet_slug": request.fleet_slug,
        "instance_type": request.instance_type,
        "source_ami": inputs.current_ami if request.mode == "bake" and inputs.current_ami else "",
        "iam_instance_profile": inputs.instance_profile,
        "models_s3_bucket": inputs.models_bucket,
        "models_s3_prefix": inputs.bundle_prefix,
        "bundle_id": inputs.bundle_id,
        "git_sha": git_sha(),
        "airflow_run_id": run_id,
    }


def expected_tags(variables: dict[str, str]) -> dict[str, str]:
    """The provenance tags the template puts on the image, from the variables it got."""
    return {key: variables[key] for key in ("fleet_stage", "fleet_slug", "bundle_id", "airflow_run_id")}


def tag_problems(tags: dict[str, str], expected: dict[str, str]) -> list[str]:
    return [
        f"tag {key} is {tags.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if tags.get(key) != value
    ]


def check_bundle(
    read_object: Callable[[str], bytes], object_size: Callable[[str], int | None], bucket: str, prefix: str
) -> manifest.Manifest:
    """The bundle's manifest, valid, with every asset in the models bucket at the size the
    manifest gives (HEAD only) - checked before a build instance is paid for or a fleet's
    pointer moves. ``object_size`` is None for a missing key. Raises
    :class:`MissingInputs` listing every problem."""
    key = manifest_key(prefix)
    source = f"s3://{bucket}/{key}"
    if object_size(key) is None:
        raise MissingInputs(f"the bundle's manifest {source} does not exist")
    try:
        bundle = manifest.loads(read_object(key), source)
    except manifest.InvalidManifest as error:
        raise MissingInputs(f"{source} is not a valid manifest v1: " + "; ".join(error.problems)) from None
    problems = [] if bundle.bundle_id == bundle_id_of(prefix) else [f"bundle_id {bundle.bundle_id} is not {prefix}"]
    for asset in bundle.assets:
        size = object_size(asset.asset_s3_key)
        if size is None:
            problems.append(f"asset s3://{bucket}/{asset.asset_s3_key} is missing")
        elif asset.size_bytes is not None and size != asset.size_bytes:
            problems.append(
                f"asset s3://{bucket}/{asset.asset_s3_key} is {size} bytes, the manifest says {asset.size_bytes}"
            )
    if problems:
        raise MissingInputs(f"the bundle {prefix} is incomplete: " + "; ".join(problems))
    return bundle


def restore_pointer(
    read: Callable[[str], dict[str, Any] | None],
    write: Callable[..., int],
    inputs: dict[str, Any] | None,
    promoted: dict[str, Any] | None,
) -> str:
    """Put the fleet's previous AMI back after a failed refresh - only if the pointer
    still holds the version this run wrote (anyone's later write wins)."""
    if not inputs:
        return "the AMI pointer was not changed by this run: nothing to restore"
    outcome = pointers.restore(
        read,
        write,
        name=inputs["ami_parameter"],
        previous=inputs["current_ami"],
        written=promoted,
        data_type="aws:ec2:image",
    )
    return f"the instance refresh failed: {outcome}"
