"""gpu_dev_node's inspection and gpu_dev_node_idle_stop's sweep against the emulator: the
refusals that come before any change; the registry, what the nodes' real agents publish
and their heartbeats (tests/doubles/fleet_nodes.py), the owner's alert first."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from moto.ssm.models import ssm_backends

from bp_tasks.common import RequestRefused
from bp_tasks.gpu_dev_node import inspect_node
from bp_tasks.gpu_dev_node_idle_stop import find_idle_nodes
from include.devnodes.lifecycle import DevNodeRequest
from include.naming import platform
from include.naming.dev_node import DevNode
from include.naming.fleet import Fleet
from tests.doubles.fleet_nodes import BUSY_TAG, EmulatedFleet

IDLE, BUSY = DevNode("staging", "alice-sdxl"), DevNode("staging", "bob-video")


def _register(aws_http, node: DevNode, owner: str, heartbeat: datetime, *tags: str) -> str:
    ec2, ssm = aws_http("ec2"), aws_http("ssm")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    all_tags = {**node.tags(owner), **dict.fromkeys(tags, "yes")}
    instance_id = ec2.run_instances(
        ImageId=image,
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in all_tags.items()]}],
    )["Instances"][0]["InstanceId"]
    fields = {
        "instance_id": instance_id,
        "state": "running",
        "owner": owner,
        "idle_stop_minutes": "30",
        "last_heartbeat": heartbeat.isoformat(),
    }
    for field, value in fields.items():
        ssm.put_parameter(Name=node.registry_parameter(field), Value=value, Type="String", Overwrite=True)
    return instance_id


def test_only_the_node_without_heartbeat_or_activity_is_stopped(aws_http, moto_endpoint, baseline):
    now = datetime.now(UTC)
    _register(aws_http, IDLE, "alice", now - timedelta(minutes=45))
    _register(aws_http, BUSY, "bob", now - timedelta(minutes=45), BUSY_TAG)
    nodes = EmulatedFleet(moto_endpoint)  # each node's ComfyUI and its real agent
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not nodes.totals["heartbeats"]:
            nodes.tick()  # bob's ComfyUI runs a prompt; his agent publishes and writes a heartbeat
            time.sleep(1)
        published = dict(nodes.totals)
    finally:
        nodes.stop()

    to_stop = find_idle_nodes.function(params={"aws_conn_id": "aws_default"})

    assert published["nodes"] == 2
    assert published["heartbeats"] == 1
    heartbeat = aws_http("ssm").get_parameter(Name=BUSY.registry_parameter("last_heartbeat"))["Parameter"]["Value"]
    assert datetime.fromisoformat(heartbeat) > now
    assert [(n["fleet_stage"], n["name"], n["action"]) for n in to_stop] == [("staging", "alice-sdxl", "stop")]
    assert to_stop[0]["reason"].startswith("idle stop: flat for 45 min (last heartbeat")


def _inspect(request: dict):
    return inspect_node.function(DevNodeRequest.from_params(request), params={"aws_conn_id": "aws_default"})


CREATE = {"fleet_stage": "staging", "name": "carol-new", "owner": "carol", "instance_type": "g5.xlarge"}


def test_a_create_is_refused_before_anything_changes_when_its_fleet_cannot_make_it(aws_http, baseline):
    with pytest.raises(RequestRefused, match=r"fleet staging/e2e-none has no AMI pointer \(/bp/ami/fleets/staging/"):
        _inspect({**CREATE, "action": "create", "fleet_slug": "e2e-none"})
    fleet = Fleet("staging", "gpu-default")
    config = {"template_slug": "dev-single", "instance_type": "g4dn.xlarge"}
    aws_http("ssm").put_parameter(Name=fleet.desired_config, Value=json.dumps(config), Type="String", Overwrite=True)
    with pytest.raises(RequestRefused, match=r"instance_type 'g6.xlarge' is not allowed .* g4dn.xlarge, g5.xlarge\)"):
        _inspect({**CREATE, "action": "create", "fleet_slug": "gpu-default", "instance_type": "g6.xlarge"})
    plan = _inspect({**CREATE, "action": "create", "fleet_slug": "gpu-default"})
    assert plan["tags"]["owner"] == "carol"
    assert plan["instance_profile"] == "bp-devnode-staging"
    assert (
        aws_http("ec2").describe_instances(Filters=[{"Name": "tag:devnode", "Values": ["carol-new"]}])["Reservations"]
        == []
    )


def test_a_stop_is_refused_while_a_bundle_apply_runs_on_the_node(aws_http, baseline):
    instance_id = _register(aws_http, IDLE, "alice", datetime.now(UTC))
    command = aws_http("ssm").send_command(
        DocumentName=platform.bundle_apply_document("staging"), InstanceIds=[instance_id]
    )
    for invocation in (
        ssm_backends["123456789012"]["us-east-1"].get_command_by_id(command["Command"]["CommandId"]).invocations
    ):
        invocation["Status"] = "InProgress"  # what SSM reports while the installer runs

    with pytest.raises(
        RequestRefused, match=rf"Can't stop dev node staging/alice-sdxl: a bundle apply runs on .*{instance_id}"
    ):
        _inspect({"fleet_stage": "staging", "name": "alice-sdxl", "action": "stop"})
