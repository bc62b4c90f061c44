"""The demo's runs, in order, and what happens in the platform around them (an admin's
or the scaler's doing). Each capability adds its own :class:`Scenario`."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from devstack import aws_bill, baseline, economics_demo
from devstack.economics_demo import EconomicsDemo
from devstack.fleet_metrics import put_minutely
from devstack.stack import LocalStack
from include.cli.airflow_client import DagRun
from include.devnodes import usage
from include.economics import infra_cost
from include.money import usd
from include.naming.dev_node import DevNode
from include.naming.fleet import Fleet

Outputs = Callable[[LocalStack, DagRun], list[str]]


@dataclass(frozen=True)
class Scenario:
    dag_id: str
    #: the run's conf, or what builds it from the stack once the runs before it have ended
    conf: dict[str, Any] | Callable[[LocalStack], dict[str, Any]]
    purpose: str
    #: Where a reader finds what the run produced, given the stack and the finished run.
    outputs: Outputs = field(default=lambda stack, run: [])
    #: What happens in the platform before the run; says what it did.
    before: Callable[[LocalStack], str] | None = None


def task_logs(*task_ids: str) -> Outputs:
    """Where each task's last try logged (remote logging: the emulator's logs bucket), and
    on Celery which worker ran it."""

    def lines(stack: LocalStack, run: DagRun) -> list[str]:
        tries = {ti["task_id"]: ti for ti in stack.client().task_instances(run.dag_id, run.run_id)}
        found = []
        for task_id in task_ids:
            ti = tries.get(task_id) or {}
            where = f" (ran on {ti.get('hostname')})" if stack.celery and ti.get("hostname") else ""
            key = f"dag_id={run.dag_id}/run_id={run.run_id}/task_id={task_id}/attempt={ti.get('try_number', 1)}.log"
            found.append(f"log {stack.remote_log_folder}/{key}{where}")
        return found

    return lines


def outcomes(stack: LocalStack, run: DagRun) -> list[str]:
    """What the run's tasks said they did (``bp_tasks.common.report_outcome``): the lines
    ``python -m include.cli.trigger ... --wait`` prints too."""
    return [line for lines in stack.client().outcomes(run.dag_id, run.run_id).values() for line in lines]


def provider_bills(stack: LocalStack, economics: EconomicsDemo) -> dict[str, str]:
    """The LLM providers' usage and cost APIs (their double, billing the ledger's usage),
    as the ``openai_admin`` and ``anthropic_admin`` connections ai_billing_import uses."""
    key = secrets.token_urlsafe(16)
    args = ["--ledger", economics.ledger_url, "--catalogue", str(economics.catalogue_path)]
    port = stack.spawn_double("provider-bills", "tests.doubles.provider_bills", args, {"BP_PROVIDER_BILLS_KEY": key})
    connection = {"conn_type": "http", "host": f"http://127.0.0.1:{port}", "password": key}
    return {f"AIRFLOW_CONN_{name.upper()}": json.dumps(connection) for name in ("openai_admin", "anthropic_admin")}


def dashboards_reading_the_day(stack: LocalStack, run: DagRun) -> list[str]:
    """Whether the provisioned dashboards and alert rules read only what the project
    writes (the contract ``make test`` checks)."""
    from include.observability import build, contract
    from include.observability.catalogue import measurements

    boards, rules = build.provisioned()
    queries, problems = contract.check(boards, rules, measurements())
    panels = sum(1 for board in boards.values() for panel in board["panels"] if panel["type"] != "row")
    verdict = "each reads only what is written" if not problems else f"{len(problems)} problem(s): {problems[0]}"
    count = sum(len(group["rules"]) for group in rules["groups"])
    return [
        f"grafana {len(boards)} dashboards, {panels} panels, {count} alert rules, {queries} queries: {verdict}",
    ]


def chain(*parts: Outputs) -> Outputs:
    return lambda stack, run: [line for part in parts for line in part(stack, run)]


def scenarios(economics: EconomicsDemo) -> list[Scenario]:
    """The demo's runs, in order."""
    last_day = economics.window.last_day
    week = economics.window.review_week
    return [
        Scenario(
            dag_id="platform_preflight",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default"},
            purpose="deploy blockers of the staging fleet",
            outputs=chain(outcomes, task_logs("check_deploy_blockers")),
        ),
        Scenario(
            dag_id="gpu_fleet_provision",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "action": "apply"},
            purpose="provision the staging fleet from its desired_config (shared + fleet stacks)",
            outputs=chain(outcomes, task_logs("read_desired_config", "deploy_fleet_stack", "verify_fleet")),
        ),
        Scenario(
            dag_id="gpu_ami_build_and_bake",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake"},
            purpose="bake the active bundle into the staging fleet's AMI, smoke-test it in the fleet, promote it",
            outputs=chain(outcomes, task_logs("plan_build", "packer_build", "smoke_test_image", "promote_ami")),
        ),
        Scenario(
            dag_id="gpu_ami_build_and_bake",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake"},
            purpose="bake the same inputs again: skipped as unchanged (no Packer, no change)",
            outputs=chain(outcomes, task_logs("plan_build", "report_unchanged")),
        ),
        Scenario(
            dag_id="gpu_bundle_rollout",
            conf={
                "fleet_stage": "staging",
                "fleet_slug": "gpu-default",
                "bundle_id": baseline.sample_bundle_id("v2"),
                "strategy": "pointer_only",
            },
            purpose="point the staging fleet (at 0 instances) at bundle v2",
            outputs=task_logs("check_bundle", "move_pointer", "record_audit"),
        ),
        Scenario(
            dag_id="gpu_bundle_rollout",
            conf={
                "fleet_stage": "staging",
                "fleet_slug": "gpu-default",
                "bundle_id": baseline.sample_bundle_id("v3"),
                "strategy": "refresh",
                "checkpoint_percentages": [50, 100],
                "bake_window_seconds": 20,  # 10 minutes by default; the emulated nodes' agents publish every 2 s
                "min_jobs": 5,  # at 50 %: the one new node's 2-s prompts
            },
            purpose="roll bundle v3 to the staging fleet's 2 nodes by instance refresh (each replaced node drains "
            "its prompt first), judged new bundle against old at 50% and at the end, verified on each node",
            outputs=chain(outcomes, task_logs("judge_refresh", "verify_fleet_bundle", "record_audit")),
            before=scale_staging_fleet,
        ),
        Scenario(
            dag_id="gpu_dev_node",
            conf={**DEV_NODE, "action": "create", "owner": "alice", "fleet_slug": "gpu-default"}
            | {"instance_type": "g5.xlarge", "idle_stop_minutes": 60},
            purpose="create alice's dev node from the staging fleet's AMI, and wait until ComfyUI answers on it",
            outputs=chain(outcomes, task_logs("act", "record_lifecycle")),
        ),
        Scenario(
            dag_id="gpu_bundle_rollout",
            conf=lambda stack: {
                "fleet_stage": "staging",
                "fleet_slug": "gpu-default",
                "bundle_id": baseline.sample_bundle_id("v3"),
                "strategy": "dev_node",
                "instance_id": dev_node_instance(stack),
            },
            purpose="install bundle v3 on alice's dev node alone by Run Command (the dev_node strategy: its own "
            "pointer moves, never the fleet's)",
            outputs=task_logs("apply_on_dev_node", "check_dev_node"),
        ),
        Scenario(
            dag_id="gpu_dev_node",
            conf={**DEV_NODE, "action": "stop", "reason": "end of the demo session"},
            purpose="stop alice's dev node; its node-hours and cost come from its lifecycle events",
            outputs=chain(dev_node_registry, dev_node_cost, task_logs("act", "record_lifecycle")),
        ),
        Scenario(
            dag_id="ai_economics_daily",
            conf={"day": last_day.isoformat()},
            purpose=f"AI cost and margin of {last_day} (with a planted token-burn anomaly)",
            outputs=chain(
                outcomes,
                lambda stack, run: [f"warehouse {economics.warehouse_url}"],
                dashboards_reading_the_day,
                task_logs("compute", "publish_warehouse", "send_alerts"),
            ),
        ),
        Scenario(
            dag_id="ai_billing_import",
            conf={"day": last_day.isoformat()},
            purpose=f"the providers' bills of {last_day} (their double) against our cost of each model",
            outputs=chain(outcomes, task_logs("import_bills", "reconcile")),
        ),
        Scenario(
            dag_id="aws_spend_daily",
            conf={"day": last_day.isoformat()},
            purpose=f"the whole AWS bill of {last_day} by hotspot (a planted NAT data-processing spike)",
            outputs=chain(outcomes, task_logs("read_spend", "send_alerts")),
        ),
        Scenario(
            dag_id="weekly_review_pack",
            conf={"week": str(week)},
            purpose=f"the weekly review pack of {week}, the last full week",
            outputs=chain(outcomes, task_logs("build_pack", "announce")),
        ),
        Scenario(
            dag_id="gpu_fleet_guardrails",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default"},
            purpose="find the staging fleet's GPU spend leak and fix it (scale to 0, protection cleared)",
            outputs=chain(outcomes, task_logs("report", "remediate_staging")),
            before=plant_idle_leak,
        ),
    ]


#: The demo's dev node (its lifecycle events land under audit/devnodes/staging/alice-sdxl/).
DEV_NODE = {"fleet_stage": "staging", "name": "alice-sdxl"}


def _dev_node_registry(stack: LocalStack) -> dict[str, str]:
    root = DevNode.of(DEV_NODE).root
    pages = stack.aws_client()("ssm").get_paginator("get_parameters_by_path").paginate(Path=root, Recursive=True)
    return {p["Name"].rsplit("/", 1)[1]: p["Value"] for page in pages for p in page["Parameters"]}


def dev_node_instance(stack: LocalStack) -> str:
    return _dev_node_registry(stack)["instance_id"]


def dev_node_registry(stack: LocalStack, run: DagRun) -> list[str]:
    """What the registry says of the node now."""
    registry = _dev_node_registry(stack)
    return [
        f"registry {DevNode.of(DEV_NODE).root}/: {registry['instance_id']} {registry['state']}, "
        f"endpoint {registry['endpoint']}, owner {registry['owner']}, last heartbeat {registry['last_heartbeat']}"
    ]


def dev_node_cost(stack: LocalStack, run: DagRun) -> list[str]:
    """The node's hours running today and their price, from its lifecycle events."""
    s3, node = stack.aws_client()("s3"), DevNode.of(DEV_NODE)
    listing = s3.list_objects_v2(Bucket=stack.logs_bucket, Prefix=node.lifecycle_prefix).get("Contents", [])
    events = [
        json.loads(line)
        for item in listing
        for line in s3.get_object(Bucket=stack.logs_bucket, Key=item["Key"])["Body"].read().decode().splitlines()
    ]
    now = datetime.now(UTC)
    days = usage.dev_node_days(events, now.date(), now, infra_cost.DEFAULT_HOURLY_PRICES)
    steps = [f"{e['action']} -> {e['to_state']}" for e in sorted(events, key=lambda e: e["ended_at"])]
    lines = [f"lifecycle events: {', '.join(steps)}"]
    lines += [
        f"{d.stage}/{d.name} (owner {d.owner}, {d.instance_type}): {d.node_hours:.4f} node-hours, {usd(d.cost_usd, 4)}"
        for d in days
    ]
    return lines


def plant_idle_leak(stack: LocalStack) -> str:
    """What seed 003 warns of: the queue emptied an hour ago, yet the staging fleet kept its
    nodes (one still protected from scale-in): the scale-to-zero path failed."""
    fleet = Fleet("staging", "gpu-default")
    aws = stack.aws_client()
    # nobody sends the nodes work any more (tests/doubles/fleet_nodes.py's QUIET_TAG)
    tag = {"ResourceId": fleet.auto_scaling_group, "ResourceType": "auto-scaling-group", "PropagateAtLaunch": False}
    aws("autoscaling").delete_tags(Tags=[{**tag, "Key": "emulator:prompt-seconds"}])
    aws("autoscaling").create_or_update_tags(Tags=[{**tag, "Key": "emulator:quiet", "Value": "true"}])
    group = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.auto_scaling_group])
    nodes = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    aws("autoscaling").set_instance_protection(
        AutoScalingGroupName=fleet.auto_scaling_group, InstanceIds=nodes[:1], ProtectedFromScaleIn=True
    )
    put_minutely(aws("cloudwatch"), fleet, {"QueueDepth": [0.0] * 60, "ActiveWorkers": [0.0] * 60}, datetime.now(UTC))
    return (
        f"the queue emptied an hour ago, yet {fleet.auto_scaling_group} kept {len(nodes)} nodes ({nodes[0]} protected)"
    )


def activate_sample_bundle(aws_client: Callable[[str], Any], seeded: baseline.Baseline) -> None:
    """What an admin does in Admin -> Assets: make the sample bundle each fleet's active one."""
    for stage, slug in seeded.fleets:
        aws_client("ssm").put_parameter(
            Name=Fleet(stage, slug).active_bundle, Value=seeded.sample_bundle_prefix, Type="String", Overwrite=True
        )


#: how long each emulated prompt runs during the refresh rollout: a node the refresh
#: replaces is always running one, and drains it before it goes
DEMO_PROMPT_SECONDS = 2


def scale_staging_fleet(stack: LocalStack, capacity: int = 2) -> str:
    """What the 0 -> 1 -> N policies do when jobs arrive: the staging fleet gets nodes,
    each running one prompt after the other."""
    group = Fleet("staging", "gpu-default").auto_scaling_group
    autoscaling = stack.aws_client()("autoscaling")
    tag = {"ResourceId": group, "ResourceType": "auto-scaling-group", "PropagateAtLaunch": False}
    # tests/doubles/fleet_nodes.py's PROMPT_SECONDS_TAG (devstack imports nothing of tests/)
    autoscaling.create_or_update_tags(
        Tags=[{**tag, "Key": "emulator:prompt-seconds", "Value": str(DEMO_PROMPT_SECONDS)}]
    )
    autoscaling.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity)
    return f"jobs arrived: {group} scaled to {capacity} nodes, each running {DEMO_PROMPT_SECONDS}-s prompts"


def upload_bundle_releases(aws_client: Callable[[str], Any], seeded: baseline.Baseline) -> None:
    """What an admin does in Admin -> Assets: new bundles for the rollouts to ship."""
    for release in ("v2", "v3"):
        baseline.upload_sample_bundle(aws_client("s3"), seeded.models_bucket, baseline.sample_bundle_id(release))


def prepare_stack(
    stack: LocalStack, last_day: date, fleets: tuple[tuple[str, str], ...] = baseline.DEFAULT_FLEETS
) -> Callable[[Callable[[str], Any]], tuple]:
    """The seed step: the AWS baseline (with ``fleets``), then the economics data and its
    Airflow settings. On Celery the economics databases are PostgreSQL and the catalogue
    is in S3: the workers are hosts of their own, with no file in common."""

    def seed(aws_client: Callable[[str], Any]) -> tuple:
        seeded = baseline.seed_baseline(aws_client, fleets=fleets)
        stack.logs_bucket = seeded.logs_bucket
        activate_sample_bundle(aws_client, seeded)
        upload_bundle_releases(aws_client, seeded)
        shared: dict[str, str] = {}
        if stack.celery:
            name = stack.database_url.rsplit("/", 1)[-1]
            shared = {
                "ledger_url": stack.postgres.recreate(f"{name}_ledger"),
                "warehouse_url": stack.postgres.recreate(f"{name}_warehouse"),
                "catalogue_uri": f"s3://{seeded.logs_bucket}/economics/price_catalogue.csv",
            }
        economics = economics_demo.prepare(stack.home / "economics", last_day, aws_client, **shared)
        stack.extra_env.update(economics.airflow_env(seeded.logs_bucket))
        stack.extra_env.update(provider_bills(stack, economics))
        aws_bill.plant(stack.moto_url, aws_client, last_day)
        stack.extra_env["AIRFLOW_VAR_AWS_DAILY_BUDGETS"] = json.dumps(aws_bill.DAILY_BUDGETS)
        return seeded, economics

    return seed
