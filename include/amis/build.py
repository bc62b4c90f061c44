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

from gpu_worker.layout import NO_ACTIVE_BUNDLE, bundle_id_of, bundle_prefix
from include import approvals
from include.amis import fingerprint, retention
from include.errors import InvalidRequest
from include.fleets.config import deployed_warmup_seconds
from include.naming import platform
from include.naming.fleet import Fleet
from include.rollouts.rollout import fleet_refresh_preferences
from include.versions import refuse_newer

MODES = ("base", "bake", "base_and_bake")
PACKER_DIR = Path(__file__).resolve().parents[2] / "packer"


class MissingInputs(RuntimeError):
    """The platform lacks something the build needs (an SSM value or an image)."""


@dataclass(frozen=True)
class BuildRequest:
    fleet: Fleet
    mode: str
    instance_type: str
    start_instance_refresh: bool
    #: boot the candidate once and run the smoke document before promoting it
    smoke_test: bool = True
    #: build even when an image with the same inputs exists
    force_build: bool = False

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> BuildRequest:
        fleet = Fleet.of(params)
        mode = params.get("mode")
        if mode not in MODES:
            raise InvalidRequest(f"mode {mode!r} is not one of {', '.join(MODES)}")
        instance_type = params.get("instance_type")
        if not isinstance(instance_type, str) or not re.fullmatch(platform.INSTANCE_TYPE_PATTERN, instance_type):
            raise InvalidRequest(f"instance_type {instance_type!r} is not an EC2 instance type like g4dn.xlarge")
        flags = {}
        for flag, default in (("start_instance_refresh", None), ("smoke_test", True), ("force_build", False)):
            flags[flag] = params.get(flag, default)
            if not isinstance(flags[flag], bool):
                raise InvalidRequest(f"{flag} must be true or false, not {flags[flag]!r}")
        if not flags["smoke_test"] and approvals.needs_approval(fleet.stage):
            raise InvalidRequest(f"smoke_test can be turned off only outside production ({fleet} is production)")
        return cls(fleet, mode, instance_type, **flags)

    @property
    def bakes_bundle(self) -> bool:
        return self.mode != "base"

    @property
    def lock(self) -> str:
        """The fleet's change lock (:attr:`Fleet.lock`)."""
        return self.fleet.lock

    @property
    def image_tags(self) -> dict[str, str]:
        """The tags that say which fleet an image was built for (retention reads them)."""
        return {retention.FLEET_STAGE_TAG: self.fleet.stage, retention.FLEET_SLUG_TAG: self.fleet.slug}

    #: the form :meth:`serialize` writes; :meth:`deserialize` refuses a newer one
    __version__ = 1

    def serialize(self) -> dict[str, Any]:
        """The request as it travels between tasks (Airflow's serde, in XCom): checked once
        by :meth:`from_params` in the run's first task, taken back as it is by
        :meth:`deserialize` in every later one."""
        return {
            "fleet_stage": self.fleet.stage,
            "fleet_slug": self.fleet.slug,
            "mode": self.mode,
            "instance_type": self.instance_type,
            "start_instance_refresh": self.start_instance_refresh,
            "smoke_test": self.smoke_test,
            "force_build": self.force_build,
        }

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> BuildRequest:
        refuse_newer(BuildRequest, version)
        fields = {key: value for key, value in data.items() if key not in ("fleet_stage", "fleet_slug")}
        return BuildRequest(Fleet(data["fleet_stage"], data["fleet_slug"]), **fields)

    def wiring(self) -> dict[str, Any]:
        """What the DAG's operators and branches take from the request
        (``validate_request`` pushes those its DAG reads as XCom keys beside the request)."""
        return {**self.fleet.names(), "image_tags": self.image_tags}


@dataclass(frozen=True)
class BuildInputs:
    """What SSM said, read once at the start of the run."""

    models_bucket: str
    #: the active bundle baked in; None for mode=base
    bundle_id: str | None
    instance_profile: str
    #: where the build instance runs: a private subnet, a group with no inbound rule
    subnet_id: str
    security_group_id: str
    #: where a smoke-test instance runs: the fleet's first private subnet, its worker group
    worker_subnet_id: str
    worker_security_group_id: str
    current_ami: str | None
    current_ami_version: int
    #: the refresh that rolls the new image onto the fleet (its warmup from desired_config)
    refresh_preferences: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_inputs(read: Callable[[str], dict[str, Any] | None], request: BuildRequest) -> BuildInputs:
    """Read the build's inputs from SSM the way bake-ami.yml did; ``read`` returns a
    parameter (``Value``, ``Version``) or None."""

    def value(name: str) -> str:
        parameter = read(name)
        if parameter is None or not parameter["Value"].strip():
            raise MissingInputs(f"SSM parameter {name} is missing or empty")
        return parameter["Value"].strip()

    fleet = request.fleet
    current = read(fleet.ami_pointer)
    bundle_id = None
    if request.bakes_bundle:
        pointer = value(fleet.active_bundle)
        if pointer == NO_ACTIVE_BUNDLE:
            raise MissingInputs(
                f"{fleet} has no active bundle ({fleet.active_bundle} is {NO_ACTIVE_BUNDLE!r}): "
                "there is nothing to bake; activate a bundle or build mode=base"
            )
        try:
            bundle_id = bundle_id_of(pointer)
        except ValueError as error:
            raise MissingInputs(f"{fleet.active_bundle}: {error}") from None
    inputs = BuildInputs(
        models_bucket=value(platform.models_bucket_parameter()),
        bundle_id=bundle_id,
        instance_profile=value(platform.packer_instance_profile()),
        subnet_id=value(platform.packer_subnet_id()),
        security_group_id=value(platform.packer_security_group_id()),
        worker_subnet_id=value(platform.private_subnet_ids()).split(",")[0].strip(),
        worker_security_group_id=value(platform.worker_security_group_id()),
        current_ami=current["Value"] if current else None,
        current_ami_version=current["Version"] if current else 0,
        refresh_preferences=fleet_refresh_preferences(deployed_warmup_seconds(read, fleet.desired_config)),
    )
    if request.mode == "bake" and not inputs.current_ami:
        raise MissingInputs(
            f"mode=bake starts from the fleet's current image, but {fleet.ami_pointer} is not set: "
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
        "fleet_stage": request.fleet.stage,
        "fleet_slug": request.fleet.slug,
        "instance_type": request.instance_type,
        "source_ami": inputs.current_ami if request.mode == "bake" and inputs.current_ami else "",
        "iam_instance_profile": inputs.instance_profile,
        "subnet_id": inputs.subnet_id,
        "security_group_id": inputs.security_group_id,
        "models_s3_bucket": inputs.models_bucket,
        "models_s3_prefix": bundle_prefix(inputs.bundle_id) if inputs.bundle_id else NO_ACTIVE_BUNDLE,
        "bundle_id": inputs.bundle_id or NO_ACTIVE_BUNDLE,
        "git_sha": git_sha(),
        "airflow_run_id": run_id,
    }


def expected_tags(variables: dict[str, str], *, built_by_this_run: bool = True) -> dict[str, str]:
    """The provenance tags the template puts on the image, from the variables it got (a
    reused image was built by an earlier run: its run id is that run's)."""
    keys = ["fleet_stage", "fleet_slug", "bundle_id", fingerprint.FINGERPRINT_TAG]
    return {key: variables[key] for key in [*keys, *(["airflow_run_id"] if built_by_this_run else [])]}


def tag_problems(tags: dict[str, str], expected: dict[str, str]) -> list[str]:
    return [
        f"tag {key} is {tags.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if tags.get(key) != value
    ]


@dataclass(frozen=True)
class BuildDecision:
    """Build with Packer, reuse an image built from the same inputs, or change nothing."""

    action: str  # build | reuse | unchanged
    image_id: str | None
    reason: str


def decide(
    request: BuildRequest,
    digest: str | None,
    reusable: str | None,
    current_ami: str | None,
    revoked: str | None = None,
) -> BuildDecision:
    """Skip Packer when an image with the same fingerprint exists for the fleet (a revoked
    one, ``revoked``, is never reused: Packer builds anew and the run says why)."""
    if request.force_build:
        return BuildDecision("build", None, "force_build is on: Packer builds whatever exists")
    if digest is None:
        return BuildDecision("build", None, "the base image could not be resolved, so the inputs have no fingerprint")
    if reusable is None and revoked:
        return BuildDecision("build", None, f"{revoked} was built from these inputs ({digest[:12]}) but is revoked")
    if reusable is None:
        return BuildDecision("build", None, f"no image of {request.fleet} was built from these inputs ({digest[:12]})")
    if reusable == current_ami:
        return BuildDecision(
            "unchanged",
            reusable,
            f"{reusable} was built from the same inputs ({digest[:12]}) and is already the fleet's image: "
            "Packer was skipped and nothing changed",
        )
    return BuildDecision(
        "reuse",
        reusable,
        f"{reusable} was built from the same inputs ({digest[:12]}): Packer is skipped and that image is checked "
        "and promoted",
    )


def fingerprinted(variables: dict[str, str], digest: str | None, base_image: str | None) -> dict[str, str]:
    """The Packer variables with the fingerprint and root base the image is tagged with."""
    return {
        **variables,
        fingerprint.FINGERPRINT_TAG: digest or "none",
        fingerprint.BASE_IMAGE_TAG: base_image or "unknown",
    }
