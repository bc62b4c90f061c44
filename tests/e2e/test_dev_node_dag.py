"""gpu_dev_node and gpu_dev_node_idle_stop on the real services and the emulator: a dev
node from create to terminate through the REST client, its registry and lifecycle events,
the refusals that come before any change, and the idle stop."""

from __future__ import annotations

import json
import re
import time

import pytest

from include.cli.airflow_client import AirflowApiError
from include.naming import platform
from include.naming.dev_node import DevNode
from tests.e2e.helpers import POLL_SECONDS, answer, log, logged, run_to_end, states

pytestmark = [pytest.mark.e2e, pytest.mark.amis]

DAG = "gpu_dev_node"
STAGE = "staging"
NODE, BUSY = DevNode(STAGE, "e2e-alice"), DevNode(STAGE, "e2e-busy")
CREATE = {"fleet_stage": STAGE, "fleet_slug": "gpu-default", "instance_type": "g5.xlarge", "idle_stop_minutes": 1}


def _act(client, node: DevNode, action: str, **conf):
    return client.trigger(DAG, {"fleet_stage": node.stage, "name": node.name, "action": action, **conf})


def _done(client, run, timeout: float = 300):
    return client.wait_for_run(DAG, run.run_id, timeout=timeout)


def _registry(stack, node: DevNode) -> dict[str, str]:
    ssm = stack.aws_client()("ssm")
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=node.root, Recursive=True)
    return {p["Name"].rsplit("/", 1)[1]: p["Value"] for page in pages for p in page["Parameters"]}


def _events(stack, node: DevNode) -> list[dict]:
    s3, bucket = stack.aws_client()("s3"), platform.logs_bucket("123456789012")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=node.lifecycle_prefix).get("Contents", [])]
    events = [json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys]
    return sorted(events, key=lambda e: e["ended_at"])


def _instance(stack, instance_id: str) -> dict:
    reservations = stack.aws_client()("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    return reservations[0]["Instances"][0]


def test_a_dev_node_lives_from_create_to_terminate_and_stops_when_idle(stack, client, ami_fleets):
    refused = run_to_end(
        client, DAG, {"name": NODE.name, "action": "create", "owner": "alice", **CREATE, "instance_type": "p5.48xlarge"}
    )
    assert refused.state == "failed"
    assert "instance_type 'p5.48xlarge' is not allowed by fleet staging/gpu-default's template" in log(
        client, DAG, refused, "inspect_node"
    )
    assert _registry(stack, NODE) == {}
    with pytest.raises(AirflowApiError, match="name"):
        client.trigger(DAG, {"fleet_stage": STAGE, "name": "alice; reboot", "action": "status"})

    # two nodes at once (each its own lock): ours, and a colleague's that is in use
    created, busy = (
        _act(client, NODE, "create", owner="alice", **CREATE),
        _act(client, BUSY, "create", owner="bob", **CREATE),
    )
    created, busy = _done(client, created), _done(client, busy)
    assert (created.state, busy.state) == ("success", "success"), states(client, DAG, created)
    registry = _registry(stack, NODE)
    instance_id = registry["instance_id"]
    assert (registry["state"], registry["owner"], registry["source_fleet"]) == (
        "running",
        "alice",
        "staging/gpu-default",
    )
    assert registry["endpoint"].endswith(":8188")
    ready = "is ready: ComfyUI ready: HTTP 200 from /system_stats"
    assert ready in logged(client, DAG, created, "act", ready)
    tags = platform.tags_of(_instance(stack, instance_id))
    assert (tags["devnode"], tags["owner"], tags["stage"], tags["bp:role"]) == (NODE.name, "alice", STAGE, "dev-node")
    busy_id = _registry(stack, BUSY)["instance_id"]
    stack.aws_client()("ec2").create_tags(Resources=[busy_id], Tags=[{"Key": "emulator:busy", "Value": "yes"}])

    for action, state in (("status", "running"), ("stop", "stopped"), ("start", "running"), ("restart", "running")):
        run = _done(client, _act(client, NODE, action))
        assert run.state == "success", (action, states(client, DAG, run))
        assert _registry(stack, NODE)["state"] == state, action
        assert _instance(stack, instance_id)["State"]["Name"] == state, action
        if action == "status":
            report = log(client, DAG, run, "report_status")
            assert re.search(rf"instance_id +{instance_id} +{instance_id}", report), report
            assert "Drift" not in report
            assert f"aws ssm start-session --target {instance_id}" in report

    # idle: ours since its restart's heartbeat; on the colleague's node ComfyUI runs prompts,
    # which its agent reports (JobCount, its GPU) and heartbeats
    time.sleep(65)
    sweep = run_to_end(client, "gpu_dev_node_idle_stop", {}, timeout=400)
    assert sweep.state == "success", states(client, "gpu_dev_node_idle_stop", sweep)
    found = log(client, "gpu_dev_node_idle_stop", sweep, "find_idle_nodes")
    assert f"{STAGE}/{NODE.name} ({instance_id}, owner alice): flat for" in found, found
    assert f"{STAGE}/{BUSY.name} ({busy_id}, owner bob): last activity" in found, found
    assert _instance(stack, instance_id)["State"]["Name"] == "stopped"
    assert _instance(stack, busy_id)["State"]["Name"] == "running"

    # terminating a node under an hour old waits for an Approve; meanwhile the node is locked
    terminate = _act(client, NODE, "terminate")
    answer_deadline = time.monotonic() + 240
    while states(client, DAG, terminate).get("approve_terminate") != "awaiting_input":
        assert time.monotonic() < answer_deadline, states(client, DAG, terminate)
        time.sleep(POLL_SECONDS)
    second = _done(client, _act(client, NODE, "status"))
    assert second.state == "failed"
    assert terminate.run_id in log(client, DAG, second, "acquire_lock")
    answer(client, DAG, terminate, "approve_terminate")
    terminate = _done(client, terminate)
    assert terminate.state == "success", states(client, DAG, terminate)
    assert _instance(stack, instance_id)["State"]["Name"] == "terminated"
    assert _registry(stack, NODE)["state"] == "terminated"
    groups = stack.aws_client()("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": [NODE.resource_name]}]
    )["SecurityGroups"]
    assert groups == []

    restart = _done(client, _act(client, NODE, "start"))
    assert restart.state == "failed"
    assert f"instance {instance_id} is terminated: create the node again" in log(client, DAG, restart, "inspect_node")

    events = _events(stack, NODE)
    done = [(e["action"], e["from_state"], e["to_state"]) for e in events if e["result"] == "success"]
    assert done == [
        ("create", "absent", "running"),
        ("status", "running", "running"),
        ("stop", "running", "stopped"),
        ("start", "stopped", "running"),
        ("restart", "running", "running"),
        ("stop", "running", "stopped"),
        ("terminate", "stopped", "terminated"),
    ]
    assert [e["action"] for e in events if e["result"] == "refused"] == ["create", "status", "start"]
    idle_stop = [e for e in events if e["result"] == "success"][5]
    assert idle_stop["reason"].startswith("idle stop: flat for")
    assert all(e["owner"] == "alice" and e["instance_id"] in (instance_id, None) for e in events[1:])
    assert events[1]["ready_seconds"] is not None  # the create's readiness, measured
