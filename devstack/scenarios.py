"""The demo's runs, in order, and what happens in the platform around them (an admin's
or the scaler's doing). Each capability adds its own :class:`Scenario`."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from devstack import baseline, economics_demo
from devstack.economics_demo import EconomicsDemo
from devstack.fleet_metrics import put_minutely
from devstack.stack import LocalStack
from include.cli.airflow_client import DagRun
from include.devnodes import usage
from include.devnodes.lifecycle import port_forward_command
from include.economics import infra_cost
from include.naming.dev_node import DevNode
from include.naming.fleet import Fleet
from include.rollouts.analysis import Analysis
from include.tables import format_table

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


def xcom_location(task_id: str, what: str) -> Outputs:
    """Where a task wrote its files (the ``location`` it returned), in object storage."""

    def lines(stack: LocalStack, run: DagRun) -> list[str]:
        value = stack.client().xcom(run.dag_id, run.run_id, task_id) or {}
        names = value.get("files") or sorted(value.get("tables", {}))
        return [f"{what} {value.get('location')}/ ({', '.join(names)})"]

    return lines


def provider_bills(stack: LocalStack, economics: EconomicsDemo) -> dict[str, str]:
    """The LLM providers' usage and cost APIs (their double, billing the ledger's usage),
    as the ``openai_admin`` and ``anthropic_admin`` connections ai_billing_import uses."""
    key = secrets.token_urlsafe(16)
    args = ["--ledger", economics.ledger_url, "--catalogue", str(economics.catalogue_path)]
    port = stack.spawn_double("provider-bills", "tests.doubles.provider_bills", args, {"BP_PROVIDER_BILLS_KEY": key})
    connection = {"conn_type": "http", "host": f"http://127.0.0.1:{port}", "password": key}
    return {f"AIRFLOW_CONN_{name.upper()}": json.dumps(connection) for name in ("openai_admin", "anthropic_admin")}


def reconciliation_of(economics: EconomicsDemo, day: date) -> Outputs:
    """The day's ai_billing_reconciliation, as the task logs it."""
    from include.economics import bill_reconciliation, warehouse

    def lines(stack: LocalStack, run: DagRun) -> list[str]:
        table = warehouse.read_days(economics.warehouse_engine(), "ai_billing_reconciliation", day, day)
        return bill_reconciliation.readable(table).splitlines()

    return lines


def dashboards_reading_the_day(stack: LocalStack, run: DagRun) -> list[str]:
    """Where the day's InfluxDB points went, and whether the provisioned dashboards and
    alert rules read only what the project writes (the contract ``make test`` checks)."""
    from include.observability import build, contract
    from include.observability.catalogue import measurements

    boards, rules = build.provisioned()
    queries, problems = contract.check(boards, rules, measurements())
    panels = sum(1 for board in boards.values() for panel in board["panels"] if panel["type"] != "row")
    verdict = "each reads only what is written" if not problems else f"{len(problems)} problem(s): {problems[0]}"
    count = sum(len(group["rules"]) for group in rules["groups"])
    return [
        f"influx {stack.client().xcom(run.dag_id, run.run_id, 'export_influx')} (every tag on the allow-list)",
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
            outputs=task_logs("check_deploy_blockers"),
        ),
        Scenario(
            dag_id="gpu_fleet_provision",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "action": "apply"},
            purpose="provision the staging fleet from its desired_config (shared + fleet stacks)",
            outputs=task_logs("read_desired_config", "deploy_fleet_stack", "verify_fleet"),
        ),
        Scenario(
            dag_id="gpu_ami_build_and_bake",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake"},
            purpose="bake the active bundle into the staging fleet's AMI, smoke-test it in the fleet, promote it",
            outputs=chain(build_decision, task_logs("plan_build", "packer_build", "smoke_test_image", "promote_ami")),
        ),
        Scenario(
            dag_id="gpu_ami_build_and_bake",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake"},
            purpose="bake the same inputs again: skipped as unchanged (no Packer, no change)",
            outputs=chain(build_decision, task_logs("plan_build", "report_unchanged")),
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
                "bake_window_seconds": 20,  # 10 minutes by default; the node double reports every 5 s
                "min_jobs": 10,
            },
            purpose="roll bundle v3 to the staging fleet's 2 nodes by instance refresh, judged by the fleet's "
            "metrics at 50% and at the end, verified on each node",
            outputs=chain(analysis_tables, task_logs("judge_refresh", "verify_fleet_bundle", "record_audit")),
            before=scale_staging_fleet,
        ),
        Scenario(
            dag_id="gpu_dev_node",
            conf={**DEV_NODE, "action": "create", "owner": "alice", "fleet_slug": "gpu-default"}
            | {"instance_type": "g5.xlarge", "idle_stop_minutes": 60},
            purpose="create alice's dev node from the staging fleet's AMI, and wait until ComfyUI answers on it",
            outputs=chain(dev_node_created, task_logs("act", "record_lifecycle")),
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
                xcom_location("compute", "tables"),
                lambda stack, run: [
                    f"warehouse {economics.warehouse_url}",
                    f"parquet s3://{stack.logs_bucket}/economics/<table>/day={last_day}/ (in the emulator)",
                ],
                dashboards_reading_the_day,
                task_logs("compute", "publish_warehouse", "send_alerts"),
            ),
        ),
        Scenario(
            dag_id="ai_billing_import",
            conf={"day": last_day.isoformat()},
            purpose=f"the providers' bills of {last_day} (their double) against our cost of each model",
            outputs=chain(reconciliation_of(economics, last_day), task_logs("import_bills", "reconcile")),
        ),
        Scenario(
            dag_id="weekly_review_pack",
            conf={"week": str(week)},
            purpose=f"the weekly review pack of {week}, the last full week",
            outputs=chain(
                xcom_location("build_pack", "pack"),
                lambda stack, run: [
                    f"s3://{stack.logs_bucket}/reports/weekly/{week}/ (in the emulator; presigned links in the notice)"
                ],
                task_logs("build_pack", "announce"),
            ),
        ),
        Scenario(
            dag_id="gpu_fleet_guardrails",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default"},
            purpose="find the staging fleet's GPU spend leak and fix it (scale to 0, protection cleared)",
            outputs=chain(guardrail_summary, task_logs("report", "remediate_staging")),
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


def dev_node_created(stack: LocalStack, run: DagRun) -> list[str]:
    """The node the create launched, how long it took to get ready, how to open ComfyUI on it."""
    acted = stack.client().xcom(run.dag_id, run.run_id, "act") or {}
    return [
        f"{acted.get('instance_id')} {acted.get('state')}, ready after {acted.get('seconds')} s "
        "(status checks, then ComfyUI answering)",
        f"open ComfyUI: {port_forward_command(acted.get('instance_id', '<instance-id>'))}",
    ]


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
        f"{d.stage}/{d.name} (owner {d.owner}, {d.instance_type}): {d.node_hours:.4f} node-hours, ${d.cost_usd:.4f}"
        for d in days
    ]
    return lines


def build_decision(stack: LocalStack, run: DagRun) -> list[str]:
    """Whether Packer ran, and why (the fingerprint of the image's inputs decides)."""
    plan = stack.client().xcom(run.dag_id, run.run_id, "plan_build") or {}
    return [f"decision: {plan.get('action')}: {plan.get('reason')}"]


def analysis_tables(stack: LocalStack, run: DagRun) -> list[str]:
    """The rollout's verdicts from the fleet's metrics: each analysis as its table."""
    analyses = stack.client().xcom(run.dag_id, run.run_id, "judge_refresh", key="analyses") or []
    lines = []
    for analysis in analyses:
        lines.append(f"analysis at {analysis['checkpoint']} on {analysis['nodes']} node(s): {analysis['verdict']}")
        rows = [[row[column] for column in Analysis.HEADER] for row in analysis["rows"]]  # JSON sorted the keys
        lines += format_table(Analysis.HEADER, rows).splitlines()
    return lines


def plant_idle_leak(stack: LocalStack) -> str:
    """What seed 003 warns of: the queue emptied an hour ago, yet the staging fleet kept its
    nodes (one still protected from scale-in): the scale-to-zero path failed."""
    fleet = Fleet("staging", "gpu-default")
    aws = stack.aws_client()
    group = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.auto_scaling_group])
    nodes = [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]
    aws("autoscaling").set_instance_protection(
        AutoScalingGroupName=fleet.auto_scaling_group, InstanceIds=nodes[:1], ProtectedFromScaleIn=True
    )
    put_minutely(aws("cloudwatch"), fleet, {"QueueDepth": [0.0] * 60, "ActiveWorkers": [0.0] * 60}, datetime.now(UTC))
    return (
        f"the queue emptied an hour ago, yet {fleet.auto_scaling_group} kept {len(nodes)} nodes ({nodes[0]} protected)"
    )


def guardrail_summary(stack: LocalStack, run: DagRun) -> list[str]:
    """The findings, what was fixed, and the GPU spend per hour it stopped."""
    client = stack.client()
    reported = client.xcom(run.dag_id, run.run_id, "report") or {}
    lines = [f"finding {f['scope']}: {f['check']}: {f['summary']}" for f in reported.get("findings", [])]
    fixed = client.xcom(run.dag_id, run.run_id, "remediate_staging") or {}
    lines += [f"fixed {a['fleet']}: {a['result']}" for a in fixed.get("applied", [])]
    return [*lines, f"saved ${Decimal(fixed.get('saved_per_hour', '0')):.2f} per hour of GPU spend"]


def activate_sample_bundle(aws_client: Callable[[str], Any], seeded: baseline.Baseline) -> None:
    """What an admin does in Admin -> Assets: make the sample bundle each fleet's active one."""
    for stage, slug in seeded.fleets:
        aws_client("ssm").put_parameter(
            Name=Fleet(stage, slug).active_bundle, Value=seeded.sample_bundle_prefix, Type="String", Overwrite=True
        )


def scale_staging_fleet(stack: LocalStack, capacity: int = 2) -> str:
    """What the 0 -> 1 -> N policies do when jobs arrive: the staging fleet gets nodes."""
    group = Fleet("staging", "gpu-default").auto_scaling_group
    stack.aws_client()("autoscaling").set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity)
    return f"jobs arrived: {group} scaled to {capacity} nodes in the emulator"


def upload_bundle_releases(aws_client: Callable[[str], Any], seeded: baseline.Baseline) -> None:
    """What an admin does in Admin -> Assets: new bundles for the rollouts to ship."""
    for release in ("v2", "v3"):
        baseline.upload_sample_bundle(aws_client("s3"), seeded.models_bucket, baseline.sample_bundle_id(release))


def prepare_stack(stack: LocalStack, last_day: date) -> Callable[[Callable[[str], Any]], tuple]:
    """The seed step: the AWS baseline, then the economics data and its Airflow settings.
    On Celery the economics databases are PostgreSQL and the catalogue is in S3: the
    workers are hosts of their own, with no file in common."""

    def seed(aws_client: Callable[[str], Any]) -> tuple:
        seeded = baseline.seed_baseline(aws_client)
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
        return seeded, economics

    return seed
