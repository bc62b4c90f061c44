"""What the guardrails read from AWS for each fleet, turned into the checks of
:mod:`include.fleets.guardrails`. Plain boto3 clients from a factory (the DAG passes
the connection's), so the whole inspection runs against the emulator in unit tests.

One fleet's AWS error is that fleet's finding ("inspection failed"), never the run's:
the other fleets are still checked. Throttling is retried by the clients' own retry
mode (the DAG builds them with botocore's ``adaptive`` retries).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from include.aws_reads import get_parameter, image_state
from include.fleets import guardrails as g
from include.fleets.config import InvalidFleetConfig, parse_desired_config, templates
from include.fleets.lock import Holder
from include.fleets.provision import config_stack_parameters
from include.naming import platform
from include.naming.fleet import Fleet

ClientFactory = Callable[[str], Any]
#: metrics read before the idle window starts, so the window's start is seen
LOOKBACK_MARGIN = timedelta(minutes=60)
#: what the guardrails read of ComfyUI/Workers, a datapoint a minute: the backend's queue
#: and the node agents' jobs (the metric contract, gpu_worker/metrics.py, is checked
#: against it)
METRICS_READ = {"QueueDepth": "Maximum", "ActiveWorkers": "Maximum", "JobCount": "Sum"}
#: what a fleet without a readable desired_config scales to zero after (seed 004's sdxl default)
DEFAULT_SCALE_TO_ZERO_MINUTES = templates()["sdxl-standard"].defaults["scale_to_zero_minutes"]


def _metric(client: ClientFactory, fleet: Fleet, name: str, start: datetime, end: datetime) -> g.Series:
    query = {
        "Id": "m",
        "MetricStat": {
            "Metric": {
                "Namespace": platform.WORKER_METRICS_NAMESPACE,
                "MetricName": name,
                "Dimensions": fleet.metric_dimensions,
            },
            "Period": 60,
            "Stat": METRICS_READ[name],
        },
    }
    timestamps, values = [], []
    for page in (
        client("cloudwatch")
        .get_paginator("get_metric_data")
        .paginate(MetricDataQueries=[query], StartTime=start, EndTime=end)
    ):
        for result in page["MetricDataResults"]:
            timestamps += result["Timestamps"]
            values += result["Values"]
    return g.Series.of(timestamps, values)


def _parameter(client: ClientFactory, name: str) -> str | None:
    parameter = get_parameter(client("ssm"), name)
    return parameter["Value"] if parameter else None


def _deployed_parameters(client: ClientFactory, fleet: Fleet) -> dict[str, str] | None:
    try:
        stack = client("cloudformation").describe_stacks(StackName=fleet.fleet_stack)["Stacks"][0]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}


def inspect_fleet(
    client: ClientFactory,
    fleet: Fleet,
    *,
    now: datetime,
    prices: Mapping[str, Decimal],
    run_state: Callable[[str, str], str],
) -> tuple[list[g.Finding], list[g.Instance]]:
    """Every per-fleet check; also the fleet's instances (for orphans and the spend rate)."""
    groups = client("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.auto_scaling_group])
    lock = _parameter(client, fleet.lock)
    findings = g.stale_lock(fleet, lock, _holder_state(lock, run_state))
    pointer = _parameter(client, fleet.ami_pointer)
    if pointer:
        findings += g.pointer_image(fleet, pointer, image_state(client("ec2"), pointer))
    if not groups["AutoScalingGroups"]:  # not provisioned (yet): nothing runs, nothing leaks
        return findings, []
    group = groups["AutoScalingGroups"][0]
    instances = [
        g.Instance(i["InstanceId"], i.get("InstanceType", ""), i["LifecycleState"], i["ProtectedFromScaleIn"])
        for i in group["Instances"]
    ]
    config_text = _parameter(client, fleet.desired_config)
    try:
        config = parse_desired_config(config_text, source=fleet.desired_config) if config_text else None
    except InvalidFleetConfig:
        config = None  # preflight reports it; the leak check falls back to the default window
    minutes = config.scale_to_zero_minutes if config else DEFAULT_SCALE_TO_ZERO_MINUTES
    start = now - timedelta(minutes=minutes) - g.LEAK_GRACE - LOOKBACK_MARGIN
    queue = _metric(client, fleet, "QueueDepth", start, now)
    active = _metric(client, fleet, "ActiveWorkers", start, now)
    findings += g.scale_to_zero_leak(fleet, instances, queue, minutes, now, prices)
    findings += g.stuck_protection(fleet, instances, queue, now)
    findings += g.capacity_without_work(fleet, group["DesiredCapacity"], queue, active)
    running = [i.instance_id for i in instances if i.lifecycle_state == "InService"]
    described = (
        [i for r in client("ec2").describe_instances(InstanceIds=running)["Reservations"] for i in r["Instances"]]
        if running
        else []
    )
    if described:
        jobs = _metric(client, fleet, "JobCount", now - g.AGENT_SILENCE - timedelta(minutes=1), now)
        findings += g.silent_agents(fleet, min(i["LaunchTime"] for i in described), jobs, now)
    if described and pointer:
        launched = sorted({i["ImageId"] for i in described} - {pointer})
        findings += g.launch_template_drift(fleet, launched[0] if launched else pointer, pointer)
    deployed = _deployed_parameters(client, fleet)
    if config and deployed is not None:
        findings += g.parameter_drift(fleet, config_stack_parameters(config), deployed)
    return findings, instances


def _holder_state(value: str | None, run_state: Callable[[str, str], str]) -> str | None:
    if value is None:
        return None
    holder = Holder.parse(value)
    return run_state(holder.dag_id, holder.run_id)


def inspect_fleets(
    client: ClientFactory,
    fleets: Sequence[Fleet],
    stages: Sequence[str],
    *,
    now: datetime,
    prices: Mapping[str, Decimal],
    run_state: Callable[[str, str], str],
    daily_budgets: Mapping[str, Decimal],
) -> list[g.Finding]:
    """Every fleet's findings, then each stage's orphans and spend rate."""
    findings: list[g.Finding] = []
    owned: set[str] = set()
    spend = dict.fromkeys(stages, Decimal(0))
    for fleet in fleets:
        try:
            found, instances = inspect_fleet(client, fleet, now=now, prices=prices, run_state=run_state)
        except (ClientError, BotoCoreError) as error:
            findings.append(
                g.Finding(str(fleet), "inspection failed", "warning", f"could not read {fleet}: {error}", "run again")
            )
            continue
        findings += found
        owned |= {i.instance_id for i in instances}
        spend[fleet.stage] = spend.get(fleet.stage, Decimal(0)) + sum(
            (g.price_of(i.instance_type, prices) for i in instances if i.running), Decimal(0)
        )
    running = [
        instance
        for page in client("ec2")
        .get_paginator("describe_instances")
        .paginate(Filters=[{"Name": "instance-state-name", "Values": ["running"]}])
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
    ]
    # every fleet group's instances are owned, whether or not this run inspects that fleet
    owned |= {
        instance["InstanceId"]
        for page in client("autoscaling").get_paginator("describe_auto_scaling_groups").paginate()
        for group in page["AutoScalingGroups"]
        if platform.FLEET_TAG in platform.tags_of(group)
        for instance in group["Instances"]
    }
    orphans = g.orphans(stages, running, owned, prices)
    findings += orphans + g.leftover_smoke_instances(stages, running, run_state, prices)
    for stage in stages:
        per_hour = spend[stage] + sum((o.dollars_per_hour for o in orphans if o.scope == stage), Decimal(0))
        findings += g.spend_rate(stage, per_hour, daily_budgets.get(stage))
    return findings
