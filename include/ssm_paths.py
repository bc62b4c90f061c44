"""Every ``/bp/...`` SSM parameter name the platform uses, and nothing else.

The names follow the current infrastructure README (seed 004, "Secrets Reference"):
per-fleet paths are ``/bp/fleets/<fleet_stage>/<fleet_slug>/...`` and AMI pointers
``/bp/ami/fleets/<fleet_stage>/<fleet_slug>``. No other module spells a ``/bp/``
string: DAGs, plugins, tests and the local baseline all call these functions, so a
rename happens here once.
"""

from __future__ import annotations

import re

from gpu_worker import layout

#: Fleet stages the platform knows. A stage scopes fleets, their secret and alarms.
FLEET_STAGES: tuple[str, ...] = ("staging", "production")

#: A fleet slug as the admin UI creates it: lowercase words joined by single hyphens.
FLEET_SLUG_PATTERN = r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$"
FLEET_SLUG_MAX_LENGTH = 40

#: The value of ``active_bundle`` when a fleet has no bundle (workers skip the sync).
NO_ACTIVE_BUNDLE = layout.NO_ACTIVE_BUNDLE

#: The value CDK left in fleet secrets; a fleet with it can't register workers.
UNSET_FLEET_SECRET = "CHANGE_ME_AFTER_DEPLOY"  # noqa: S105 - the public placeholder, not a secret

ROOT = "/bp"
FLEETS_ROOT = f"{ROOT}/fleets"

_SLUG_RE = re.compile(FLEET_SLUG_PATTERN)


class InvalidFleetName(ValueError):
    """A stage or slug that would build a parameter name outside the fleet's own path."""


def check_fleet_stage(fleet_stage: str) -> str:
    if fleet_stage not in FLEET_STAGES:
        raise InvalidFleetName(f"fleet_stage {fleet_stage!r} is not one of {', '.join(FLEET_STAGES)}")
    return fleet_stage


def check_fleet_slug(fleet_slug: str) -> str:
    if not isinstance(fleet_slug, str) or len(fleet_slug) > FLEET_SLUG_MAX_LENGTH or not _SLUG_RE.fullmatch(fleet_slug):
        raise InvalidFleetName(
            f"fleet_slug {fleet_slug!r} must be lowercase letters, digits and single "
            f"hyphens, start with a letter, at most {FLEET_SLUG_MAX_LENGTH} characters"
        )
    return fleet_slug


def _fleet(fleet_stage: str, fleet_slug: str) -> str:
    return f"{FLEETS_ROOT}/{check_fleet_stage(fleet_stage)}/{check_fleet_slug(fleet_slug)}"


# --- platform-wide ------------------------------------------------------------------


def models_bucket() -> str:
    """Name of the S3 bucket holding content-addressed assets and bundle manifests."""
    return f"{ROOT}/models/bucket"


def packer_instance_profile() -> str:
    """Instance profile Packer attaches to its build instance (bake reads the bucket)."""
    return f"{ROOT}/packer/instance_profile"


def redis_endpoint() -> str:
    return f"{ROOT}/redis/endpoint"


def vpc_id() -> str:
    """VPC of the GPU fleets, published by the network baseline for the fleet stacks."""
    return f"{ROOT}/network/vpc_id"


def private_subnet_ids() -> str:
    """StringList of the private subnets GPU workers launch into."""
    return f"{ROOT}/network/private_subnet_ids"


def worker_security_group_id() -> str:
    return f"{ROOT}/network/worker_security_group_id"


def asset_ops_secret() -> str:
    """Secrets Manager secret (not SSM) shared with the backend's ops endpoint, which
    verifies the signature of each rollout audit record (seed 004, "Secrets Reference")."""
    return f"{ROOT}/asset-ops/secret"


# --- per stage ----------------------------------------------------------------------


def stage_root(fleet_stage: str) -> str:
    """Prefix of everything one stage owns (used for GetParametersByPath)."""
    return f"{FLEETS_ROOT}/{check_fleet_stage(fleet_stage)}"


def fleet_secret(fleet_stage: str) -> str:
    """SecureString shared by the backend and the stage's workers for registration."""
    return f"{stage_root(fleet_stage)}/fleet-secret"


# --- per fleet ----------------------------------------------------------------------


def fleet_root(fleet_stage: str, fleet_slug: str) -> str:
    return _fleet(fleet_stage, fleet_slug)


def active_bundle(fleet_stage: str, fleet_slug: str) -> str:
    """Pointer to the fleet's bundle prefix (``bundles/<bundle_id>``) or ``none``."""
    return f"{_fleet(fleet_stage, fleet_slug)}/active_bundle"


def rollout_lock(fleet_stage: str, fleet_slug: str) -> str:
    """Held by the one bundle rollout of the fleet in progress (created without overwrite,
    so a second rollout can't take it); holds that run's id."""
    return f"{_fleet(fleet_stage, fleet_slug)}/rollout_lock"


def desired_config(fleet_stage: str, fleet_slug: str) -> str:
    """JSON the admin UI writes when a fleet is created or edited."""
    return f"{_fleet(fleet_stage, fleet_slug)}/desired_config"


def fleet_ami(fleet_stage: str, fleet_slug: str) -> str:
    """The fleet's promoted AMI (DataType ``aws:ec2:image``); launch templates resolve it."""
    return f"{ROOT}/ami/fleets/{check_fleet_stage(fleet_stage)}/{check_fleet_slug(fleet_slug)}"


_FLEET_LEAF_RE = re.compile(
    rf"^{re.escape(FLEETS_ROOT)}/(?P<stage>[^/]+)/(?P<slug>[^/]+)/(?:active_bundle|desired_config)$"
)


def fleet_of(parameter_name: str) -> tuple[str, str] | None:
    """The (stage, slug) a per-fleet parameter belongs to, or None for any other name.

    Used to discover fleets from a GetParametersByPath listing of ``stage_root``.
    """
    match = _FLEET_LEAF_RE.match(parameter_name)
    if not match or match["stage"] not in FLEET_STAGES or not _SLUG_RE.fullmatch(match["slug"]):
        return None
    return match["stage"], match["slug"]
