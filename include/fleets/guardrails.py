"""Guardrails: what a fleet looks like when it is leaking GPU money or drifting, each
check one function over plain data (what the AWS calls returned), so every rule is
tested without AWS.

Seed 003 names the cost risks: Spot "scale-to-zero" leakage (instances in service
while nothing waits) and scale-in protection left on idle instances. A check returns
:class:`Finding` s; a finding that is safe to fix says which :data:`REMEDIATIONS` fixes
it. Missing metrics are a finding of their own ("no data"): never healthy, never a leak.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from include.fleets.lock import LIVE_RUN_STATES, Holder
from include.money import usd
from include.naming import platform
from include.naming.fleet import Fleet

#: how long after scale_to_zero_minutes an idle fleet with instances counts as a leak
#: (the alarm needs its datapoints, the scale-to-zero function a minute to act)
LEAK_GRACE = timedelta(minutes=10)
#: nodes in service this long, with no word from any node agent in that time: agents down
AGENT_SILENCE = timedelta(minutes=10)
#: spend-rate thresholds, as a share of the stage's daily budget
BUDGET_WARNING_SHARE = Decimal("0.8")
#: safe, idempotent fixes a guardrails run may apply
REMEDIATIONS = ("scale_to_zero", "release_lock", "terminate_smoke_instance")
#: instance families that are GPU instances (what the orphan check looks for)
GPU_FAMILIES = ("g", "p")


@dataclass(frozen=True)
class Finding:
    """One thing wrong with one fleet (or one stage, for spend and orphans)."""

    scope: str  # "staging/gpu-default", or "staging" for stage-wide checks
    check: str
    severity: str  # warning | critical
    summary: str  # the numbers, in one line
    action: str  # what a person (or the remediation) does about it
    remediation: str | None = None
    dollars_per_hour: Decimal = Decimal(0)
    details: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        """For XCom (JSON): the dollars as a string, kept exact."""
        return {**asdict(self), "dollars_per_hour": str(self.dollars_per_hour), "details": dict(self.details)}

    @classmethod
    def from_dict(cls, value: Mapping[str, object]) -> Finding:
        return cls(**{**value, "dollars_per_hour": Decimal(str(value["dollars_per_hour"]))})  # type: ignore[arg-type]

    @property
    def stage(self) -> str:
        return self.scope.split("/", 1)[0]


#: the lifecycle states of an instance that runs, and bills: in service, or held by the
#: fleet's termination hook while it drains (``Terminating:Wait``) and right after
RUNNING_STATES = frozenset({"InService", "Terminating:Wait", "Terminating:Proceed"})


@dataclass(frozen=True)
class Instance:
    instance_id: str
    instance_type: str
    lifecycle_state: str = "InService"
    protected_from_scale_in: bool = False

    @property
    def running(self) -> bool:
        return self.lifecycle_state in RUNNING_STATES


@dataclass(frozen=True)
class Series:
    """A CloudWatch metric's datapoints (timestamp, value), oldest first; empty = no data."""

    points: tuple[tuple[datetime, float], ...]

    @classmethod
    def of(cls, timestamps: Iterable[datetime], values: Iterable[float]) -> Series:
        return cls(tuple(sorted(zip(timestamps, values, strict=True))))

    @property
    def latest(self) -> float | None:
        return self.points[-1][1] if self.points else None

    def zero_since(self) -> datetime | None:
        """When the trailing run of zeros began (None: the latest value isn't 0, or no data)."""
        since = None
        for timestamp, value in reversed(self.points):
            if value != 0:
                break
            since = timestamp
        return since


def _hours(span: timedelta) -> Decimal:
    return Decimal(span.total_seconds()) / Decimal(3600)


def price_of(instance_type: str, prices: Mapping[str, Decimal]) -> Decimal:
    """The hourly price (the economics' ``gpu_hourly_prices``); 0 where none is known,
    which the finding then says rather than guessing."""
    return prices.get(instance_type, Decimal(0))


def no_data(fleet: Fleet, metric: str) -> Finding:
    return Finding(
        str(fleet),
        "no data",
        "warning",
        f"no {metric} datapoints in CloudWatch ComfyUI/Workers for {fleet}",
        "check that the workers publish their metrics (the node's agent) - the fleet's health is unknown",
    )


def silent_agents(fleet: Fleet, in_service_since: datetime | None, job_count: Series, now: datetime) -> list[Finding]:
    """Nodes in service for over :data:`AGENT_SILENCE` with no ``JobCount`` from their agents
    in that time (an agent sends it every minute, 0 when idle): verdicts and alarms are blind."""
    if in_service_since is None or now - in_service_since < AGENT_SILENCE:
        return []
    if any(moment >= now - AGENT_SILENCE for moment, _ in job_count.points):
        return []
    since, minutes = in_service_since.isoformat(timespec="minutes"), round(AGENT_SILENCE.total_seconds() / 60)
    summary = f"nodes in service since {since}, but no node agent published JobCount in the last {minutes} min"
    action = "on a node: systemctl status bp-node-agent, /var/log/bp-agent/agent.log (the role needs PutMetricData)"
    return [Finding(str(fleet), "silent node agents", "warning", summary, action)]


def scale_to_zero_leak(
    fleet: Fleet,
    instances: Sequence[Instance],
    queue_depth: Series,
    scale_to_zero_minutes: int,
    now: datetime,
    prices: Mapping[str, Decimal],
) -> list[Finding]:
    """Instances in service while the queue has been empty for longer than the fleet's
    scale_to_zero_minutes plus :data:`LEAK_GRACE`: what they cost so far and per hour."""
    if not queue_depth.points:
        return [no_data(fleet, "QueueDepth")]
    in_service = [i for i in instances if i.lifecycle_state == "InService"]
    since = queue_depth.zero_since()
    if not in_service or since is None:
        return []
    allowed = timedelta(minutes=scale_to_zero_minutes) + LEAK_GRACE
    idle = now - since
    if idle <= allowed:
        return []
    per_hour = sum((price_of(i.instance_type, prices) for i in in_service), Decimal(0))
    # counted from when the fleet should have been at 0
    overdue = _hours(idle - timedelta(minutes=scale_to_zero_minutes))
    leaked_hours, leaked = overdue * len(in_service), overdue * per_hour
    return [
        Finding(
            str(fleet),
            "scale-to-zero leak",
            "critical" if idle > 4 * allowed else "warning",
            f"{len(in_service)} instance(s) in service while QueueDepth has been 0 for "
            f"{idle.total_seconds() / 60:.0f} min (scale_to_zero_minutes {scale_to_zero_minutes}): "
            f"{leaked_hours:.2f} GPU-hours, {usd(leaked)} so far, {usd(per_hour)}/hour",
            "clear scale-in protection and set the desired capacity to 0 (remediate)",
            remediation="scale_to_zero",
            dollars_per_hour=per_hour,
            details={
                "instances": [i.instance_id for i in in_service],
                "idle_minutes": round(idle.total_seconds() / 60),
            },
        )
    ]


def stuck_protection(fleet: Fleet, instances: Sequence[Instance], queue_depth: Series, now: datetime) -> list[Finding]:
    """Instances protected from scale-in while the queue is empty: the worker sets the
    protection while it runs a job, so an idle fleet keeps none."""
    since = queue_depth.zero_since()
    protected = [i for i in instances if i.protected_from_scale_in and i.lifecycle_state == "InService"]
    if since is None or not protected:
        return []
    return [
        Finding(
            str(fleet),
            "stuck scale-in protection",
            "warning",
            f"{len(protected)} instance(s) protected from scale-in while QueueDepth has been 0 for "
            f"{(now - since).total_seconds() / 60:.0f} min: {', '.join(i.instance_id for i in protected)}",
            "clear the protection (remediate): no job runs on an idle fleet",
            remediation="scale_to_zero",
            details={"instances": [i.instance_id for i in protected]},
        )
    ]


def capacity_without_work(fleet: Fleet, desired: int, queue_depth: Series, active_workers: Series) -> list[Finding]:
    """A desired capacity above 0 while nothing waits and no worker is busy."""
    if not active_workers.points:
        return [no_data(fleet, "ActiveWorkers")]
    if desired > 0 and queue_depth.latest == 0 and active_workers.latest == 0:
        return [
            Finding(
                str(fleet),
                "capacity without work",
                "warning",
                f"desired capacity {desired} with QueueDepth 0 and ActiveWorkers 0",
                "set the desired capacity to 0 (remediate), or find why the scale-to-zero alarm did not fire",
                remediation="scale_to_zero",
            )
        ]
    return []


def orphans(
    stages: Sequence[str],
    running: Sequence[Mapping[str, object]],
    fleet_instance_ids: set[str],
    prices: Mapping[str, Decimal],
) -> list[Finding]:
    """Running GPU instances of ``stages`` that no fleet group owns and that are not dev
    nodes, and GPU instances with no ``stage`` tag at all (their cost goes to no fleet).
    ``running`` is DescribeInstances' instances (``InstanceId``, ``InstanceType``, ``Tags``)."""
    findings = []
    for instance in running:
        instance_type = str(instance["InstanceType"])
        if not instance_type.startswith(GPU_FAMILIES):
            continue
        tags = platform.tags_of(instance)
        instance_id, per_hour = str(instance["InstanceId"]), price_of(instance_type, prices)
        stage = tags.get(platform.STAGE_TAG)
        if stage is None:
            findings.append(
                Finding(
                    "account",
                    "untagged GPU instance",
                    "warning",
                    f"{instance_id} ({instance_type}) has no {platform.STAGE_TAG!r} tag: its cost goes to no fleet",
                    "tag it (stage, fleet) or terminate it",
                    dollars_per_hour=per_hour,
                )
            )
        elif stage in stages and instance_id not in fleet_instance_ids:
            if tags.get(platform.ROLE_TAG) in (platform.DEV_NODE_ROLE, platform.AMI_SMOKE_ROLE):
                continue  # dev nodes are people's; smoke instances are leftover_smoke_instances'

            findings.append(
                Finding(
                    stage,
                    "orphan GPU instance",
                    "critical",
                    f"{instance_id} ({instance_type}) runs in {stage} but belongs to no fleet group and is no dev "
                    f"node: {usd(per_hour)}/hour",
                    "terminate it, or tag it bp:role=dev-node if it is one",
                    dollars_per_hour=per_hour,
                )
            )
    return findings


def leftover_smoke_instances(
    stages: Sequence[str],
    running: Sequence[Mapping[str, object]],
    run_state: Callable[[str, str], str],
    prices: Mapping[str, Decimal],
) -> list[Finding]:
    """AMI smoke-test instances whose build run has ended: the run terminates its instance
    on every path it controls, but a run killed while deferred, or marked failed by hand,
    can't. Terminating one is safe: nothing but that run ever used it."""
    findings = []
    for instance in running:
        tags = platform.tags_of(instance)
        if tags.get(platform.ROLE_TAG) != platform.AMI_SMOKE_ROLE or tags.get(platform.STAGE_TAG) not in stages:
            continue
        dag_id, run_id = tags.get("airflow_dag_id", "?"), tags.get("airflow_run_id", "?")
        state = run_state(dag_id, run_id)
        if state in LIVE_RUN_STATES:
            continue
        instance_id, instance_type = str(instance["InstanceId"]), str(instance["InstanceType"])
        per_hour = price_of(instance_type, prices)
        findings.append(
            Finding(
                f"{tags[platform.STAGE_TAG]}/{tags.get(platform.FLEET_TAG, '?')}",
                "leftover smoke-test instance",
                "warning",
                f"{instance_id} ({instance_type}) smoke-tested {tags.get('smoke_test_of', '?')} for {dag_id} "
                f"{run_id}, a run that is {state}: {usd(per_hour)}/hour",
                "terminate it (remediate): its run can no longer terminate it",
                remediation="terminate_smoke_instance",
                dollars_per_hour=per_hour,
                details={"instance_id": instance_id},
            )
        )
    return findings


def stale_lock(fleet: Fleet, value: str | None, holder_state: str | None) -> list[Finding]:
    """A change lock whose holder's run has ended (``holder_state`` is that run's state,
    ``"gone"`` for a deleted run): the next change would take it over, but nothing should
    wait for that."""
    if value is None or holder_state is None or holder_state in LIVE_RUN_STATES:
        return []
    holder = Holder.parse(value)
    return [
        Finding(
            str(fleet),
            "stale lock",
            "warning",
            f"{fleet.lock} is held by {holder.dag_id} {holder.run_id} ({holder.purpose}), a run that is {holder_state}",
            "release it (remediate): its run can no longer release it",
            remediation="release_lock",
            details={"holder_dag_id": holder.dag_id, "holder_run_id": holder.run_id},
        )
    ]


def pointer_image(fleet: Fleet, image_id: str | None, image_state: str | None) -> list[Finding]:
    """The fleet's AMI pointer must name an image that is ``available``: the launch
    template resolves it at every launch, so a scale-out would fail."""
    if image_id is None or image_state == "available":
        return []
    said = "no longer exists" if image_state is None else f"is {image_state}"
    return [
        Finding(
            str(fleet),
            "AMI pointer to a missing image",
            "critical",
            f"{fleet.ami_pointer} names {image_id}, which {said}: the next scale-out can't launch",
            "promote an available image (gpu_ami_build_and_bake, mode=base) before the fleet scales out",
        )
    ]


def launch_template_drift(fleet: Fleet, launched_image: str | None, pointer_value: str | None) -> list[Finding]:
    """Instances launched from another image than the pointer names (the pointer moved
    without a refresh, or the launch template was edited by hand)."""
    if launched_image is None or pointer_value is None or launched_image == pointer_value:
        return []
    summary = f"instances run {launched_image} while {fleet.ami_pointer} names {pointer_value}"
    action = "start an instance refresh (gpu_bundle_rollout strategy=refresh) or promote the running image"
    return [Finding(str(fleet), "AMI drift", "warning", summary, action)]


def parameter_drift(fleet: Fleet, wanted: Mapping[str, str], deployed: Mapping[str, str]) -> list[Finding]:
    """desired_config's stack parameters against the deployed stack's."""
    changed = sorted(key for key in wanted if deployed.get(key) != wanted[key])
    if not changed:
        return []
    differences = ", ".join(f"{key} {deployed.get(key)!r} -> {wanted[key]!r}" for key in changed)
    summary = f"{fleet.fleet_stack} differs from desired_config: {differences}"
    action = "run gpu_fleet_provision (action=apply) for the fleet"
    return [Finding(str(fleet), "desired_config not deployed", "warning", summary, action)]


def stack_drift(fleet: Fleet, drifted: Sequence[Mapping[str, object]]) -> list[Finding]:
    """CloudFormation drift detection's drifted resources (DescribeStackResourceDrifts)."""
    if not drifted:
        return []
    resources = ", ".join(f"{d['LogicalResourceId']} ({d['StackResourceDriftStatus']})" for d in drifted)
    summary = f"{fleet.fleet_stack} has drifted: {resources}"
    action = "re-apply the stack (gpu_fleet_provision action=apply) or fold the change into desired_config"
    return [Finding(str(fleet), "stack drift", "warning", summary, action)]


def spend_rate(stage: str, dollars_per_hour: Decimal, daily_budget: Decimal | None) -> list[Finding]:
    """The stage's running GPU spend, as a day, against its daily budget: warning from
    80 %, critical above 100 %."""
    if not daily_budget:
        return []
    per_day = dollars_per_hour * 24
    share = per_day / daily_budget
    if share < BUDGET_WARNING_SHARE:
        return []
    return [
        Finding(
            stage,
            "spend rate",
            "critical" if share > 1 else "warning",
            f"{stage} runs GPUs at {usd(dollars_per_hour)}/hour = {usd(per_day)}/day, "
            f"{share:.0%} of its daily budget {usd(daily_budget)}",
            "find what runs (the fleets' findings above) or raise the budget (Variable gpu_daily_budgets)",
            dollars_per_hour=dollars_per_hour,
        )
    ]


def saved_per_hour(findings: Iterable[Finding]) -> Decimal:
    """What the remediated leaks were costing per hour (each fleet counted once)."""
    per_fleet: dict[str, Decimal] = {}
    for finding in findings:
        if finding.remediation == "scale_to_zero":
            per_fleet[finding.scope] = max(per_fleet.get(finding.scope, Decimal(0)), finding.dollars_per_hour)
    return sum(per_fleet.values(), Decimal(0))
