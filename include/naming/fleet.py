"""A GPU fleet: one immutable value, validated once, that owns every name derived from it.

A fleet is a ``(stage, slug)`` pair. Its SSM parameters live under
``/bp/fleets/<stage>/<slug>/`` and its AMI pointer at ``/bp/ami/fleets/<stage>/<slug>``
(seed 004); its AWS resources are named ``asg-<stage>-<slug>`` and
``bp-gpu-fleet-<stage>-<slug>``. Tasks hand a fleet to each other as
:meth:`Fleet.names` (XCom-friendly) and rebuild it with :meth:`Fleet.of`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from include.errors import InvalidRequest
from include.naming import platform

#: A fleet slug as the admin UI creates it: lowercase words joined by single hyphens.
SLUG_PATTERN = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
SLUG_MAX_LENGTH = 40

_SLUG = re.compile(SLUG_PATTERN)
_FLEET_LEAF = re.compile(
    rf"^{re.escape(platform.FLEETS_ROOT)}/(?P<stage>[^/]+)/(?P<slug>[^/]+)/(?:active_bundle|desired_config)$"
)
_AMI_POINTER = re.compile(rf"^{re.escape(platform.AMI_POINTERS_ROOT)}/(?P<stage>[^/]+)/(?P<slug>[^/]+)$")


def check_slug(slug: object, param: str = "fleet_slug") -> str:
    """``slug`` when it follows the admin UI's slug rules (fleets and dev nodes share them)."""
    if not isinstance(slug, str) or len(slug) > SLUG_MAX_LENGTH or not _SLUG.fullmatch(slug):
        raise InvalidRequest(
            f"{param} {slug!r} must be lowercase letters, digits and single "
            f"hyphens, start with a letter, at most {SLUG_MAX_LENGTH} characters"
        )
    return slug


@dataclass(frozen=True)
class Fleet:
    stage: str
    slug: str

    def __post_init__(self) -> None:
        platform.check_stage(self.stage)
        check_slug(self.slug)

    @classmethod
    def of(cls, value: dict[str, Any]) -> Fleet:
        """The fleet named by params or by :meth:`names` (``fleet_stage``, ``fleet_slug``)."""
        return cls(value.get("fleet_stage"), value.get("fleet_slug"))

    @classmethod
    def from_parameter_name(cls, name: str) -> Fleet | None:
        """The fleet a per-fleet parameter belongs to, or None for any other name
        (fleets are discovered from a GetParametersByPath listing of a stage)."""
        return cls._matched(_FLEET_LEAF.match(name))

    @classmethod
    def from_ami_pointer(cls, name: str) -> Fleet | None:
        """The fleet whose AMI pointer ``name`` is, or None (pointers are discovered from a
        GetParametersByPath listing of :data:`platform.AMI_POINTERS_ROOT`)."""
        return cls._matched(_AMI_POINTER.match(name))

    @classmethod
    def _matched(cls, match: re.Match[str] | None) -> Fleet | None:
        if not match:
            return None
        try:
            return cls(match["stage"], match["slug"])
        except InvalidRequest:
            return None

    def __str__(self) -> str:
        return f"{self.stage}/{self.slug}"

    # --- SSM parameters ---------------------------------------------------------------

    @property
    def root(self) -> str:
        return f"{platform.stage_root(self.stage)}/{self.slug}"

    @property
    def active_bundle(self) -> str:
        """Pointer to the fleet's bundle prefix (``bundles/<bundle_id>``) or ``none``."""
        return f"{self.root}/active_bundle"

    @property
    def desired_config(self) -> str:
        """JSON the admin UI writes when a fleet is created or edited."""
        return f"{self.root}/desired_config"

    @property
    def lock(self) -> str:
        """The fleet's change lock (:mod:`include.fleets.lock`): held by the one run that
        changes the fleet, whichever DAG it is."""
        return f"{self.root}/change_lock"

    @property
    def ami_pointer(self) -> str:
        """The fleet's promoted AMI (DataType ``aws:ec2:image``); launch templates resolve it."""
        return f"{platform.AMI_POINTERS_ROOT}/{self.stage}/{self.slug}"

    @property
    def fleet_secret(self) -> str:
        return platform.fleet_secret(self.stage)

    # --- AWS resources ----------------------------------------------------------------

    @property
    def auto_scaling_group(self) -> str:
        """The fleet's Auto Scaling group (seed 004: ``asg-<fleet_stage>-<fleet_slug>``)."""
        return f"asg-{self.stage}-{self.slug}"

    @property
    def fleet_stack(self) -> str:
        """The fleet's stack (seed 004: ``bp-gpu-fleet-<fleet_stage>-<fleet_slug>``)."""
        return f"bp-gpu-fleet-{self.stage}-{self.slug}"

    @property
    def shared_stack(self) -> str:
        return platform.shared_stack(self.stage)

    @property
    def apply_document(self) -> str:
        return platform.bundle_apply_document(self.stage)

    @property
    def status_document(self) -> str:
        return platform.bundle_status_document(self.stage)

    @property
    def worker_instance_profile(self) -> str:
        """The fleet's worker instance profile (``gpu-fleet.yaml``); AMI smoke tests use it too."""
        return f"bp-gpu-worker-{self.stage}-{self.slug}"

    @property
    def smoke_document(self) -> str:
        return platform.ami_smoke_document(self.stage)

    @property
    def log_group(self) -> str:
        """Per stage and slug: two stages may share a slug (seed 003's topic collision)."""
        return f"/gpu-workers/{self.stage}/{self.slug}"

    @property
    def metric_dimensions(self) -> list[dict[str, str]]:
        """The CloudWatch dimensions of the fleet's metrics (ADR-0005: fleet-only)."""
        return [{"Name": "FleetSlug", "Value": self.slug}, {"Name": "Stage", "Value": self.stage}]

    @property
    def tags(self) -> dict[str, str]:
        """The cost-allocation tags of the fleet's resources."""
        return {platform.STAGE_TAG: self.stage, platform.FLEET_TAG: self.slug}

    # --- what the DAGs keep in the logs bucket ---------------------------------------

    @property
    def rollout_audit_prefix(self) -> str:
        """Where the fleet's rollout audit records are (one per run)."""
        return f"audit/rollouts/{self.stage}/{self.slug}/"

    def rollout_audit_key(self, run_id: str) -> str:
        """One immutable JSON-lines object per rollout."""
        return f"{self.rollout_audit_prefix}{run_id}.jsonl"

    def remediation_audit_key(self, run_id: str, remediation: str) -> str:
        """One immutable record per remediation a guardrails run applied to the fleet."""
        return f"audit/remediations/{self.stage}/{self.slug}/{run_id}/{remediation}.jsonl"

    @property
    def remediation_run_prefix(self) -> str:
        """The run ids of ``gpu_fleet_remediation`` for the fleet begin with it (then the
        UTC time the inspection asked): the inspection finds one still waiting by it."""
        return f"remediate__{self.stage}__{self.slug}__"

    def asset_sync_key(self, run_id: str, instance_id: str) -> str:
        """Where a Run Command bundle apply's output is kept (seed 004: ``asset-sync/``)."""
        return f"asset-sync/{self.stage}/{self.slug}/{run_id}/{instance_id}.json"

    def ami_smoke_key(self, run_id: str) -> str:
        """Where an AMI smoke test's checks and output are kept."""
        return f"ami-smoke/{self.stage}/{self.slug}/{run_id}.json"

    def names(self) -> dict[str, str]:
        """The fleet and every name derived from it, for XCom and for task logs."""
        return {
            "fleet_stage": self.stage,
            "fleet_slug": self.slug,
            "active_bundle": self.active_bundle,
            "desired_config": self.desired_config,
            "lock": self.lock,
            "ami_pointer": self.ami_pointer,
            "auto_scaling_group": self.auto_scaling_group,
            "fleet_stack": self.fleet_stack,
            "shared_stack": self.shared_stack,
            "apply_document": self.apply_document,
            "status_document": self.status_document,
            "smoke_document": self.smoke_document,
            "worker_instance_profile": self.worker_instance_profile,
            "models_bucket_parameter": platform.models_bucket_parameter(),
        }
