"""Deploy-blocker checks run before anyone builds an AMI or rolls out a bundle.

Seed 003 ("Deploy Blockers") lists what broke go-live: fleet secrets left at
``CHANGE_ME_AFTER_DEPLOY``, workers unable to find their AMI or bundle, bad config.
:func:`inspect_platform` reads the platform's state through boto3 clients and
returns *every* finding, not just the first, so one run tells an operator the whole
list. It never writes anything and never returns a secret value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from gpu_worker import layout
from include.aws_reads import get_parameter, image_state, parameters_under
from include.fleets import config as fleet_config
from include.naming import platform
from include.naming.fleet import Fleet, check_slug
from include.tables import format_table

ClientFactory = Callable[[str], Any]


class Severity(StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Finding:
    check: str
    resource: str
    severity: Severity
    detail: str


@dataclass(frozen=True)
class Scope:
    """Which stages and fleets to check; ``None`` means all."""

    fleet_stage: str | None = None
    fleet_slug: str | None = None

    @classmethod
    def of(cls, value: dict[str, Any]) -> Scope:
        """From the params (or the request a first task returned): ``fleet_stage``, ``fleet_slug``."""
        return cls(value.get("fleet_stage"), value.get("fleet_slug"))

    def as_dict(self) -> dict[str, str | None]:
        return {"fleet_stage": self.fleet_stage, "fleet_slug": self.fleet_slug}

    def __post_init__(self) -> None:
        if self.fleet_stage is not None:
            platform.check_stage(self.fleet_stage)
        if self.fleet_slug is not None:
            check_slug(self.fleet_slug)

    @property
    def stages(self) -> tuple[str, ...]:
        return (self.fleet_stage,) if self.fleet_stage else platform.STAGES

    def includes(self, fleet: Fleet) -> bool:
        return fleet.stage in self.stages and self.fleet_slug in (None, fleet.slug)


class PreflightFailed(Exception):
    """Raised by :func:`raise_for_critical`; its message lists every critical finding."""


def inspect_platform(
    client: ClientFactory,
    scope: Scope = Scope(),
    *,
    on_secret: Callable[[str], None] = lambda _value: None,
) -> list[Finding]:
    """Check the platform baseline and every fleet in ``scope``.

    :param client: returns a boto3 client for a service name.
    :param on_secret: called with every secret value read, before anything else is
        done with it, so the caller can mask it in logs.
    """
    ssm, s3, ec2 = client("ssm"), client("s3"), client("ec2")
    findings: list[Finding] = []

    models_bucket = _check_models_bucket(ssm, s3, findings)
    findings.append(_check_present(ssm, platform.packer_instance_profile(), "packer instance profile"))
    findings.append(_check_present(ssm, platform.packer_subnet_id(), "packer subnet"))
    findings.append(_check_present(ssm, platform.packer_security_group_id(), "packer security group"))

    fleets = discover_fleets(ssm, scope)
    if not fleets:
        findings.append(
            Finding(
                "fleets",
                ", ".join(platform.stage_root(stage) for stage in scope.stages),
                Severity.WARNING,
                "no fleet found in scope (no desired_config or active_bundle parameter)",
            )
        )
    fleet_stages = {fleet.stage for fleet in fleets}
    for stage in scope.stages:
        # A stage without fleets needs no secret yet; one with fleets can't run without it.
        findings.append(_check_fleet_secret(ssm, stage, stage in fleet_stages, on_secret))
    for fleet in fleets:
        findings.append(_check_desired_config(ssm, fleet))
        findings.append(_check_ami_pointer(ssm, ec2, fleet))
        findings.append(_check_active_bundle(ssm, s3, models_bucket, fleet))
    return findings


def discover_fleets(ssm: Any, scope: Scope = Scope()) -> list[Fleet]:
    """Fleets that have a ``desired_config`` or ``active_bundle`` parameter, sorted."""
    fleets: set[Fleet] = set()
    for stage in scope.stages:
        for name in parameters_under(ssm, platform.stage_root(stage)):
            fleet = Fleet.from_parameter_name(name)
            if fleet and scope.includes(fleet):
                fleets.add(fleet)
    if scope.fleet_stage and scope.fleet_slug:
        # A fleet named explicitly is checked even when nothing of it exists yet.
        fleets.add(Fleet(scope.fleet_stage, scope.fleet_slug))
    return sorted(fleets, key=str)


def has_critical(findings: Iterable[Finding]) -> bool:
    return any(f.severity is Severity.CRITICAL for f in findings)


def raise_for_critical(findings: list[Finding]) -> None:
    critical = [f for f in findings if f.severity is Severity.CRITICAL]
    if critical:
        lines = "; ".join(f"{f.check} {f.resource}: {f.detail}" for f in critical)
        raise PreflightFailed(f"{len(critical)} deploy blocker(s) found: {lines}")


def render_table(findings: list[Finding]) -> str:
    """A fixed-width table for the task log, critical rows first."""
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.OK: 2}
    return format_table(
        ("SEVERITY", "CHECK", "RESOURCE", "DETAIL"),
        (
            (f.severity.value.upper(), f.check, f.resource, f.detail)
            for f in sorted(findings, key=lambda f: order[f.severity])
        ),
    )


# --- individual checks ---------------------------------------------------------------


def _check_present(ssm: Any, name: str, what: str) -> Finding:
    if get_parameter(ssm, name) is None:
        return Finding("parameter", name, Severity.WARNING, f"{what} parameter is missing")
    return Finding("parameter", name, Severity.OK, f"{what} is set")


def _check_models_bucket(ssm: Any, s3: Any, findings: list[Finding]) -> str | None:
    name = platform.models_bucket_parameter()
    parameter = get_parameter(ssm, name)
    if parameter is None:
        findings.append(Finding("models bucket", name, Severity.CRITICAL, "parameter is missing"))
        return None
    bucket = parameter["Value"]
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        reason = "does not exist" if code in ("404", "NoSuchBucket") else f"is not readable ({code})"
        findings.append(
            Finding("models bucket", name, Severity.CRITICAL, f"points to bucket {bucket!r}, which {reason}")
        )
        return None
    findings.append(Finding("models bucket", name, Severity.OK, f"bucket {bucket} exists"))
    return bucket


def _check_fleet_secret(ssm: Any, stage: str, stage_has_fleets: bool, on_secret: Callable[[str], None]) -> Finding:
    name = platform.fleet_secret(stage)
    severity_if_bad = Severity.CRITICAL if stage_has_fleets else Severity.WARNING
    parameter = get_parameter(ssm, name, decrypt=True)
    if parameter is None:
        return Finding("fleet secret", name, severity_if_bad, "parameter is missing")
    value = parameter["Value"]
    if value.strip() in ("", platform.UNSET_FLEET_SECRET):
        # The public placeholder is not a secret: masking it would hide the finding's reason.
        return Finding(
            "fleet secret",
            name,
            severity_if_bad,
            f"still the deploy placeholder {platform.UNSET_FLEET_SECRET}: workers can't register",
        )
    on_secret(value)
    if parameter["Type"] != "SecureString":
        return Finding("fleet secret", name, Severity.WARNING, f"stored as {parameter['Type']}, not SecureString")
    return Finding("fleet secret", name, Severity.OK, "set (SecureString)")


def _check_desired_config(ssm: Any, fleet: Fleet) -> Finding:
    name = fleet.desired_config
    parameter = get_parameter(ssm, name)
    if parameter is None:
        return Finding("desired_config", name, Severity.WARNING, "missing: the fleet can't be provisioned yet")
    try:
        config = fleet_config.parse_desired_config(parameter["Value"], source=name)
    except fleet_config.InvalidFleetConfig as error:
        return Finding("desired_config", name, Severity.CRITICAL, "; ".join(error.problems))
    return Finding(
        "desired_config",
        name,
        Severity.OK,
        f"valid: template {config.template_slug}, {', '.join(config.instance_types)}, max_size {config.max_size}",
    )


def _check_ami_pointer(ssm: Any, ec2: Any, fleet: Fleet) -> Finding:
    name = fleet.ami_pointer
    parameter = get_parameter(ssm, name)
    if parameter is None:
        return Finding(
            "ami pointer",
            name,
            Severity.WARNING,
            "missing: run gpu_ami_build_and_bake (mode=base) before provisioning",
        )
    image_id = parameter["Value"]
    state = image_state(ec2, image_id)
    if state is None:
        return Finding("ami pointer", name, Severity.CRITICAL, f"points to {image_id}, which does not exist")
    if state != "available":
        return Finding("ami pointer", name, Severity.CRITICAL, f"points to {image_id}, which is {state}")
    return Finding("ami pointer", name, Severity.OK, f"{image_id} is available")


def _check_active_bundle(ssm: Any, s3: Any, models_bucket: str | None, fleet: Fleet) -> Finding:
    name = fleet.active_bundle
    parameter = get_parameter(ssm, name)
    if parameter is None:
        return Finding(
            "active bundle", name, Severity.WARNING, f"missing (workers treat it as {platform.NO_ACTIVE_BUNDLE})"
        )
    prefix = parameter["Value"].strip()
    if prefix == platform.NO_ACTIVE_BUNDLE:
        return Finding("active bundle", name, Severity.OK, "none: workers skip the bundle sync")
    if models_bucket is None:
        return Finding("active bundle", name, Severity.WARNING, f"{prefix} not checked: no models bucket")
    key = layout.manifest_key(prefix)
    try:
        s3.head_object(Bucket=models_bucket, Key=key)
    except ClientError as error:
        if error.response["Error"]["Code"] not in ("404", "NoSuchKey"):
            raise
        return Finding(
            "active bundle", name, Severity.CRITICAL, f"names s3://{models_bucket}/{key}, which does not exist"
        )
    return Finding("active bundle", name, Severity.OK, f"s3://{models_bucket}/{key} exists")
