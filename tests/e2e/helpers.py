"""What the end-to-end files share: running a DAG to its end, reading the warehouse, and
planting what a test needs (a bad ledger row, a provisioned fleet)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta

from devstack import baseline
from gpu_worker import layout
from include.economics import ledger, warehouse
from include.naming import platform
from include.naming.fleet import Fleet

FLEET_CONFIG = {
    "template_slug": "sdxl-standard",
    "instance_types": ["g4dn.xlarge"],
    "max_size": 4,
    "warmup_seconds": 60,
}


def cli_env(stack, user: str = "admin", password: str | None = None) -> dict[str, str]:
    """The CI client's environment for ``user`` of the stack (secrets in the environment)."""
    return {
        **os.environ,
        "AIRFLOW_API_URL": stack.api_url,
        "AIRFLOW_USERNAME": user,
        "AIRFLOW_PASSWORD": password or stack.password(user),
    }


def cli(stack, *args: str, user: str = "admin", password: str | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m include.cli.trigger`` as CI runs it; its exit code and output."""
    from devstack.stack import REPO_ROOT

    return subprocess.run(
        [sys.executable, "-m", "include.cli.trigger", *args],
        cwd=REPO_ROOT,
        env=cli_env(stack, user, password),
        capture_output=True,
        text=True,
        timeout=300,
    )


#: Rollout params for a verdict within seconds: each node's agent publishes every 2 s, a job a second.
QUICK_VERDICT = {"bake_window_seconds": 15, "min_jobs": 5}


#: How often the tests ask Airflow how a run or a task is doing. Under ``make test`` four
#: stacks share two CPUs, and every poll costs an api-server request and its PostgreSQL
#: queries: a run's verdict a second later costs nothing.
POLL_SECONDS = 2


def run_to_end(client, dag_id: str, conf: dict, timeout: float = 300):
    run = client.trigger(dag_id, conf)
    return client.wait_for_run(dag_id, run.run_id, timeout=timeout)


def awaiting(client, dag_id: str, run, task_id: str, timeout: float = 240, poll: float = POLL_SECONDS) -> None:
    """Wait until ``task_id`` of ``run`` waits for a person: its task instance parked in
    ``awaiting_input`` (asking for that one task instance, every ``poll`` seconds)."""
    deadline = time.monotonic() + timeout
    while client.task_instance(dag_id, run.run_id, task_id)["state"] != "awaiting_input":
        assert time.monotonic() < deadline, f"{task_id} never asked for an approval: {states(client, dag_id, run)}"
        time.sleep(poll)


def answer(client, dag_id: str, run, task_id: str, choice: str = "Approve", by=None) -> None:
    """Answer ``task_id`` once it waits for a person (as ``by``, the triggering client by
    default), as soon as the CLI would (an earlier answer survives too: see
    tests/e2e/test_bundle_rollout_dag.py's approvals at 0.5-5 s)."""
    from include.cli.commands import SETTLE_SECONDS

    awaiting(client, dag_id, run, task_id)
    time.sleep(SETTLE_SECONDS)
    (by or client).respond(dag_id, run.run_id, task_id, [choice])


def topic_inbox(stack, topic_name: str, queue_name: str):
    """An SQS queue subscribed to the SNS topic ``topic_name``: what its readers receive.
    Returns a function that reads (and consumes) up to 10 messages."""
    sns, sqs = stack.aws_client()("sns"), stack.aws_client()("sqs")
    [topic] = [t["TopicArn"] for t in sns.list_topics()["Topics"] if t["TopicArn"].endswith(f":{topic_name}")]
    queue = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return lambda: [
        json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    ]


def states(client, dag_id: str, run) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run.run_id)}


def log(client, dag_id: str, run, task_id: str, try_number: int | None = None) -> str:
    """A task's log: its last try by default (an approval Airflow interrupted, #72716,
    answers in its second try; the first try's log may no longer be reachable)."""
    attempt = try_number or client.task_instance(dag_id, run.run_id, task_id)["try_number"]
    return "\n".join(client.task_log_lines(dag_id, run.run_id, task_id, attempt))


def logged(client, dag_id: str, run, task_id: str, text: str, timeout: float = 30) -> str:
    """A task's log once it holds ``text``. A deferred task's log reaches remote storage in
    parts (up to its deferral, then the resumed part as the task ends), and the last part
    can land a moment after the run reads as ended (seen once under ``make test``)."""
    deadline = time.monotonic() + timeout
    while text not in (found := log(client, dag_id, run, task_id)) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    return found


def published(economics, day) -> dict[str, list[dict]]:
    engine = economics.warehouse_engine()
    return {name: warehouse.read_days(engine, name, day, day).to_dict("records") for name in warehouse.TABLES}


def plant_bad_ledger_row(economics, day) -> str:
    """A request whose cached tokens exceed its input: the gate's critical check fails."""
    row = {
        "request_id": f"bad-cache-{day}",
        "user_id": 1,
        "feature_name": "chat",
        "model_name": "gpt-4.1",
        "input_tokens": 100,
        "cached_input_tokens": 500,
        "output_tokens": 10,
        "reasoning_tokens": None,
        "total_tokens": 110,
        "estimated_cost": 0,
        "request_duration_ms": 5,
        "success": True,
        "error_type": None,
        "release": "x",
        "created_at": datetime.combine(day, datetime.min.time()) + timedelta(hours=5),
    }
    with economics.ledger_engine().begin() as connection:
        connection.execute(ledger.ai_usage_logs.insert(), [row])
    return row["request_id"]


def sample_bundles(stack) -> list[str]:
    """Two releases of the sample bundle (v1, v2) in the models bucket, as an admin uploads them."""
    s3 = stack.aws_client()("s3")
    ids = [baseline.sample_bundle_id(release) for release in ("v1", "v2")]
    for bundle_id in ids:
        baseline.upload_sample_bundle(s3, platform.models_bucket("123456789012"), bundle_id)
    return ids


def provision_fleet(
    stack, client, slug: str, bundle_id: str | None, stage: str = "staging", *, approver=None, config=None
) -> Fleet:
    """A fleet created by gpu_fleet_provision from a desired_config (``config``, else
    :data:`FLEET_CONFIG`), on ``bundle_id`` (None: the bundle it has), with
    staging/gpu-default's image unless it has one; production's apply is approved by
    ``approver``."""
    fleet = Fleet(stage, slug)
    ssm = stack.aws_client()("ssm")
    desired = json.dumps(config or FLEET_CONFIG)
    ssm.put_parameter(Name=fleet.desired_config, Value=desired, Type="String", Overwrite=True)
    image = ssm.get_parameter(Name=Fleet("staging", "gpu-default").ami_pointer)["Parameter"]["Value"]
    if fleet != Fleet("staging", "gpu-default"):
        ssm.put_parameter(Name=fleet.ami_pointer, Value=image, Type="String", DataType="aws:ec2:image", Overwrite=True)
    if bundle_id is not None:
        ssm.put_parameter(
            Name=fleet.active_bundle, Value=layout.bundle_prefix(bundle_id), Type="String", Overwrite=True
        )
    elif fleet.stage != "staging":
        active = ssm.get_parameter(Name=Fleet("staging", "gpu-default").active_bundle)["Parameter"]["Value"]
        ssm.put_parameter(Name=fleet.active_bundle, Value=active, Type="String", Overwrite=True)
    client.set_paused("gpu_fleet_provision", False)
    run = client.trigger("gpu_fleet_provision", {"fleet_stage": stage, "fleet_slug": slug, "action": "apply"})
    if approver is not None and stage == "production":
        answer(client, "gpu_fleet_provision", run, "approve_apply", by=approver)
    run = client.wait_for_run("gpu_fleet_provision", run.run_id, timeout=300)
    assert run.state == "success", states(client, "gpu_fleet_provision", run)
    return fleet


def remove_fleet(stack, fleet: Fleet) -> None:
    aws = stack.aws_client()
    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=fleet.auto_scaling_group, DesiredCapacity=0)
    aws("cloudformation").delete_stack(StackName=fleet.fleet_stack)
    aws("ssm").delete_parameters(Names=[fleet.desired_config, fleet.ami_pointer, fleet.active_bundle])


def scale(stack, fleet: Fleet, capacity: int) -> list[str]:
    autoscaling = stack.aws_client()("autoscaling")
    autoscaling.set_desired_capacity(AutoScalingGroupName=fleet.auto_scaling_group, DesiredCapacity=capacity)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[fleet.auto_scaling_group])
    return [i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"]]


def plan_refresh_failure(stack, fleet: Fleet, at_percent: int = 50) -> None:
    """The emulator fails the group's next instance refresh at ``at_percent`` (a tag it drops)."""
    tag = {"ResourceId": fleet.auto_scaling_group, "ResourceType": "auto-scaling-group"}
    stack.aws_client()("autoscaling").create_or_update_tags(
        Tags=[{**tag, "Key": "emulator:fail-refresh-at", "Value": str(at_percent), "PropagateAtLaunch": False}]
    )
