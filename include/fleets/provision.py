"""Provisioning a GPU fleet: the request, the stacks' inputs, and the checks around them.

Replaces the provision-gpu-fleet and apply-gpu-fleet-config workflows (seed 004). A
fleet is two stacks: the stage's shared scale-to-zero stack (``gpu-shared.yaml``) and
the fleet's own (``gpu-fleet.yaml``), deployed from the desired_config the admin UI
wrote. Plain Python: the DAG ``gpu_fleet_provision`` wires it to the AWS hooks.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.errors import InvalidRequest
from include.fleets.config import DRAIN_HOOK_MARGIN_SECONDS, SCALE_TO_ZERO_MINUTES_BOUNDS, FleetConfig
from include.fleets.guardrails import LEAK_GRACE
from include.naming import platform
from include.naming.fleet import Fleet
from include.versions import refuse_newer

INFRA_DIR = Path(__file__).resolve().parents[2] / "infra"
SHARED_TEMPLATE = INFRA_DIR / "cloudformation" / "gpu-shared.yaml"
FLEET_TEMPLATE = INFRA_DIR / "cloudformation" / "gpu-fleet.yaml"
FUNCTION_SOURCE = INFRA_DIR / "lambda" / "scale_to_zero"

ACTIONS = ("apply", "destroy")
#: How long an apply may wait for the admin UI to write desired_config (0: don't wait).
CONFIG_WAIT_MINUTES_BOUNDS = (0, 120)
#: The fleet stack's instance-type slots (``InstanceType1..4``).
INSTANCE_TYPE_SLOTS = 4
#: The fleet stack's alarm outputs verify_fleet checks.
ALARM_OUTPUTS = (
    "QueueEmptyAlarmName",
    "JobsWaitingAtZeroAlarmName",
    "ErrorRateAlarmName",
    "QueueDeepAlarmName",
    "IdleWorkersAlarmName",
)
#: Zip entries get this timestamp, so the same source always packages to the same bytes.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class FleetRequest:
    fleet: Fleet
    action: str
    config_wait_minutes: int

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> FleetRequest:
        fleet = Fleet.of(params)
        action = params.get("action")
        if action not in ACTIONS:
            raise InvalidRequest(f"action {action!r} is not one of {', '.join(ACTIONS)}")
        wait = params.get("config_wait_minutes", 0)
        low, high = CONFIG_WAIT_MINUTES_BOUNDS
        if isinstance(wait, bool) or not isinstance(wait, int) or not low <= wait <= high:
            raise InvalidRequest(f"config_wait_minutes must be a whole number from {low} to {high}, got {wait!r}")
        return cls(fleet, action, wait)

    @property
    def lock(self) -> str:
        """The fleet's change lock (:attr:`Fleet.lock`)."""
        return self.fleet.lock

    #: the form :meth:`serialize` writes; :meth:`deserialize` refuses a newer one
    __version__ = 1

    def serialize(self) -> dict[str, Any]:
        """The request as it travels between tasks (Airflow's serde, in XCom): checked once
        by :meth:`from_params` in the run's first task, taken back as it is by
        :meth:`deserialize` in every later one."""
        return {
            "fleet_stage": self.fleet.stage,
            "fleet_slug": self.fleet.slug,
            "action": self.action,
            "config_wait_minutes": self.config_wait_minutes,
        }

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> FleetRequest:
        refuse_newer(FleetRequest, version)
        return FleetRequest(Fleet(data["fleet_stage"], data["fleet_slug"]), data["action"], data["config_wait_minutes"])

    def wiring(self) -> dict[str, Any]:
        """What the DAG's operators and branches take from the request
        (``validate_request`` pushes those its DAG reads as XCom keys beside the request)."""
        return {
            **self.fleet.names(),
            "action": self.action,
            "config_wait_seconds": self.config_wait_minutes * 60,
        }


@dataclass(frozen=True)
class FunctionPackage:
    """The scale-to-zero function's zip, addressed by its content."""

    body: bytes
    sha256: str

    @property
    def key(self) -> str:
        return f"artifacts/lambda/scale-to-zero/{self.sha256}.zip"


def function_package(source: Path = FUNCTION_SOURCE) -> FunctionPackage:
    """Zip the function's Python files byte-for-byte reproducibly: unchanged code keeps
    its S3 key, so the shared stack's change set is empty; changed code gets a new key,
    which is what makes CloudFormation redeploy the function."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.glob("*.py")):
            entry = zipfile.ZipInfo(path.name, date_time=_ZIP_EPOCH)
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, path.read_bytes())
    body = buffer.getvalue()
    return FunctionPackage(body, sha256_of(body))


def sha256_of(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


MANAGED_BY = {"managed-by": "airflow/gpu_fleet_provision"}


def shared_stack_tags(fleet: Fleet) -> dict[str, str]:
    """The stage's shared stack: tagged with the stage only (it serves every fleet of it)."""
    return {platform.STAGE_TAG: fleet.stage, **MANAGED_BY}


def fleet_stack_tags(fleet: Fleet) -> dict[str, str]:
    """Stack tags, which CloudFormation propagates to the resources (cost allocation)."""
    return {**fleet.tags, **MANAGED_BY}


def shared_stack_parameters(fleet_stage: str, code_bucket: str, code_key: str, vpc_id: str) -> dict[str, str]:
    """``vpc_id``: the fleets' VPC (``/bp/network/vpc_id``), where dev nodes may launch."""
    return {"Stage": fleet_stage, "CodeBucket": code_bucket, "CodeKey": code_key, "VpcId": vpc_id}


def sibling_topic_arns(topic_arn: str, names: Sequence[str]) -> list[str]:
    """ARNs of topics named ``names`` in the account and region of ``topic_arn``."""
    prefix = topic_arn.rsplit(":", 1)[0]
    return [f"{prefix}:{name}" for name in names]


def config_stack_parameters(config: FleetConfig) -> dict[str, str]:
    """The stack parameters a desired_config decides (what drifts when the config was
    edited and not applied)."""
    slots = list(config.instance_types) + [""] * (INSTANCE_TYPE_SLOTS - len(config.instance_types))
    return {
        "TemplateSlug": config.template_slug,
        **{f"InstanceType{number}": value for number, value in enumerate(slots, start=1)},
        "MaxSize": str(config.max_size),
        "WarmupSeconds": str(config.warmup_seconds),
        "BacklogTarget": f"{config.backlog_target:g}",
        "ScaleToZeroMinutes": str(config.scale_to_zero_minutes),
        "ErrorRateAlarmPercent": str(config.error_rate_alarm_percent),
        "QueueDeepJobs": str(config.queue_deep_jobs),
        "QueueDeepMinutes": str(config.queue_deep_minutes),
        "IdleWorkersMinutes": str(idle_workers_minutes(config)),
        "DrainTimeoutSeconds": str(config.drain_timeout_seconds),
        "DrainHookTimeoutSeconds": str(config.drain_timeout_seconds + DRAIN_HOOK_MARGIN_SECONDS),
    }


def fleet_stack_parameters(
    fleet: Fleet,
    config: FleetConfig,
    scale_to_zero_topic_arn: str,
    fleet_secret_key_arn: str,
    alert_topic_arns: Mapping[str, Sequence[str]],
) -> dict[str, str]:
    """The fleet stack's parameters. Subnets, security group and bucket are passed as the
    *names* of the baseline's SSM parameters: CloudFormation resolves them at deploy time.
    ``fleet_secret_key_arn`` is the one KMS key the workers may decrypt with (the fleet
    secret's); ``alert_topic_arns`` (severity -> ARNs) is where the alarm tiers notify."""
    return {
        "Stage": fleet.stage,
        "FleetSlug": fleet.slug,
        **config_stack_parameters(config),
        "ScaleToZeroTopicArn": scale_to_zero_topic_arn,
        "WarningTopicArns": ",".join(alert_topic_arns["warning"]),
        "CriticalTopicArns": ",".join(alert_topic_arns["critical"]),
        "AmiParameterName": fleet.ami_pointer,
        "FleetParameterPath": fleet.root,
        "ActiveBundleParameterName": fleet.active_bundle,
        "ModelsBucketParameterName": platform.models_bucket_parameter(),
        "FleetSecretParameterName": fleet.fleet_secret,
        "FleetSecretKeyArn": fleet_secret_key_arn,
        "ModelsBucket": platform.models_bucket_parameter(),
        "PrivateSubnetIds": platform.private_subnet_ids(),
        "WorkerSecurityGroupId": platform.worker_security_group_id(),
    }


def ami_pointer_problem(pointer: dict[str, Any] | None, fleet: Fleet) -> str | None:
    """Why the fleet's launch template could not resolve its image, or None."""
    name = fleet.ami_pointer
    run_ami_dag = (
        f"run the {platform.AMI_BUILD_DAG} DAG with fleet_stage={fleet.stage}, fleet_slug={fleet.slug}, mode=base first"
    )
    if pointer is None:
        return f"the fleet has no AMI pointer {name}: {run_ami_dag}"
    if pointer.get("DataType") != "aws:ec2:image":
        return f"{name} has DataType {pointer.get('DataType')!r}, not aws:ec2:image: {run_ami_dag}"
    return None


def fleet_drift(
    config: FleetConfig,
    fleet: Fleet,
    *,
    group: dict[str, Any],
    policies: list[dict[str, Any]],
    alarms: dict[str, dict[str, Any]],
    image_id: str,
    topic_arn: str,
    alert_topic_arns: Mapping[str, Sequence[str]],
) -> list[str]:
    """Every way the deployed fleet differs from its config (empty: it matches).

    ``alarms`` maps the stack's alarm outputs (:data:`ALARM_OUTPUTS`) to DescribeAlarms
    entries (None when missing).
    """
    problems = []

    def expect(what: str, actual: Any, wanted: Any) -> None:
        if actual != wanted:
            problems.append(f"{what} is {actual!r}, expected {wanted!r}")

    expect("MinSize", group["MinSize"], 0)
    expect("MaxSize", group["MaxSize"], config.max_size)
    mixed = group.get("MixedInstancesPolicy") or {}
    overrides = (mixed.get("LaunchTemplate") or {}).get("Overrides") or []
    expect("instance types", [o.get("InstanceType") for o in overrides], list(config.instance_types))
    distribution = mixed.get("InstancesDistribution") or {}
    expect("on-demand base capacity", distribution.get("OnDemandBaseCapacity"), 0)
    expect("on-demand percentage", distribution.get("OnDemandPercentageAboveBaseCapacity"), 0)
    expect("Spot allocation strategy", distribution.get("SpotAllocationStrategy"), "price-capacity-optimized")
    expect("capacity rebalance", group.get("CapacityRebalance"), True)
    expect("new instances protected from scale in", group.get("NewInstancesProtectedFromScaleIn"), False)
    expect("launch template image", image_id, f"resolve:ssm:{fleet.ami_pointer}")
    tags = platform.tags_of(group)
    for key, value in fleet.tags.items():
        expect(f"tag {key}", tags.get(key), value)

    by_type: dict[str, list[dict[str, Any]]] = {}
    for policy in policies:
        by_type.setdefault(policy["PolicyType"], []).append(policy)
    tracking = by_type.get("TargetTrackingScaling", [])
    if len(tracking) != 1:
        problems.append(f"expected one target tracking policy, found {len(tracking)}")
    else:
        expect("backlog target", tracking[0]["TargetTrackingConfiguration"]["TargetValue"], config.backlog_target)
    steps = by_type.get("StepScaling", [])
    if len(steps) != 1:
        problems.append(f"expected one step scaling policy (0 -> 1), found {len(steps)}")

    queue_empty = alarms.get("QueueEmptyAlarmName")
    if queue_empty is None:
        problems.append("the queue-empty alarm is missing")
    else:
        expect("queue-empty alarm evaluation periods", queue_empty["EvaluationPeriods"], config.scale_to_zero_minutes)
        expect("queue-empty alarm actions", queue_empty["AlarmActions"], [topic_arn])
    waiting = alarms.get("JobsWaitingAtZeroAlarmName")
    if waiting is None:
        problems.append("the jobs-waiting-at-zero alarm is missing")
    elif len(steps) == 1:
        expect("jobs-waiting-at-zero alarm actions", waiting["AlarmActions"], [steps[0]["PolicyARN"]])
    tiers = {
        "ErrorRateAlarmName": ("error-rate", config.error_rate_alarm_percent, 5, "critical"),
        "QueueDeepAlarmName": ("queue-deep", config.queue_deep_jobs, config.queue_deep_minutes, "warning"),
        "IdleWorkersAlarmName": ("idle-workers", 0, idle_workers_minutes(config), "warning"),
    }
    for output, (name, threshold, periods, severity) in tiers.items():
        alarm = alarms.get(output)
        if alarm is None:
            problems.append(f"the {name} alarm is missing")
            continue
        expect(f"{name} alarm threshold", alarm["Threshold"], float(threshold))
        expect(f"{name} alarm evaluation periods", alarm["EvaluationPeriods"], periods)
        expect(f"{name} alarm actions", alarm["AlarmActions"], list(alert_topic_arns[severity]))
    return problems


def idle_workers_minutes(config: FleetConfig) -> int:
    """The idle-workers alarm's window: scale-to-zero's plus the guardrails' grace (so it
    fires only when scale-to-zero failed), within CloudWatch's one-day cap."""
    return min(config.scale_to_zero_minutes + int(LEAK_GRACE.total_seconds() // 60), SCALE_TO_ZERO_MINUTES_BOUNDS[1])


def destroy_blockers(group: dict[str, Any] | None) -> list[str]:
    """Why the fleet can't be destroyed now (empty: it is at 0 and may go)."""
    if group is None:
        return []
    problems = []
    if group["DesiredCapacity"]:
        problems.append(f"desired capacity is {group['DesiredCapacity']}")
    if group["Instances"]:
        states = sorted({i["LifecycleState"] for i in group["Instances"]})
        problems.append(f"{len(group['Instances'])} instance(s) still in the group ({', '.join(states)})")
    return problems
