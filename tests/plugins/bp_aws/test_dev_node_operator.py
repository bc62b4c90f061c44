"""A dev node's lifecycle against the emulator and the GPU node double: the launch as the
operator policy expects it, readiness, stop, start, restart and terminate, each waited for."""

from __future__ import annotations

import base64

import pytest
from moto.ssm.models import ssm_backends

from bp_aws.exceptions import DevNodeNotReady
from bp_aws.hooks.run_command import RunCommandHook
from bp_aws.operators.dev_node import DevNodeActionOperator
from include.devnodes import lifecycle
from include.naming import platform
from include.naming.dev_node import DevNode
from include.naming.fleet import Fleet
from tests.doubles import gpu_node
from tests.plugins.conftest import resume

NODE = DevNode("staging", "alice-sdxl")
DOCUMENT = '{"schemaVersion": "2.2", "description": "d", "mainSteps": [{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}'  # noqa: E501


@pytest.fixture
def world(aws_http, baseline, monkeypatch):
    """A fleet image, the stage's health and apply documents, the dev-node profile."""
    monkeypatch.setenv("AIRFLOW__BP__TRIGGER_FIRST_POLL_DELAY", "0")
    gpu_node.install()
    ec2, ssm = aws_http("ec2"), aws_http("ssm")
    image_id = ec2.register_image(Name="bp-gpu-fleet-image", RootDeviceName="/dev/sda1")["ImageId"]
    for name in (NODE.health_document, platform.bundle_apply_document("staging")):
        ssm.create_document(Name=name, DocumentType="Command", Content=DOCUMENT)
    aws_http("iam").create_instance_profile(InstanceProfileName=NODE.instance_profile)
    return {
        "image_id": image_id,
        "vpc_id": ssm.get_parameter(Name=platform.vpc_id())["Parameter"]["Value"],
        "subnet_id": ssm.get_parameter(Name=platform.private_subnet_ids())["Parameter"]["Value"].split(",")[0],
    }


def _act(action: str, plan: dict) -> dict:
    operator = DevNodeActionOperator(
        task_id="act",
        action=action,
        plan=plan,
        health_document=NODE.health_document,
        poll_interval=1,
        status_timeout=30,
        readiness_timeout=30,
        deferrable=True,
    )
    return resume(operator)


def _create_plan(world) -> dict:
    return {
        "instance_id": None,
        "nothing_to_do": False,
        "resource_name": NODE.resource_name,
        "image_id": world["image_id"],
        "instance_type": "g5.xlarge",
        "vpc_id": world["vpc_id"],
        "subnet_id": world["subnet_id"],
        "instance_profile": NODE.instance_profile,
        "tags": NODE.tags("alice"),
        "identity_tags": NODE.identity_tags(),
        "user_data": lifecycle.user_data(NODE),
    }


def test_a_dev_node_goes_through_its_whole_lifecycle(aws_http, world):
    ec2 = aws_http("ec2")
    created = _act("create", _create_plan(world))

    assert created["state"] == "running"
    assert created["ready"] is True
    instance_id = created["instance_id"]
    instance = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    assert "PublicIpAddress" not in instance
    assert instance["IamInstanceProfile"]["Arn"].endswith(f"instance-profile/{NODE.instance_profile}")
    assert platform.tags_of(instance)["owner"] == "alice"
    [group] = ec2.describe_security_groups(GroupIds=[instance["NetworkInterfaces"][0]["Groups"][0]["GroupId"]])[
        "SecurityGroups"
    ]
    assert group["GroupName"] == NODE.resource_name
    assert group["IpPermissions"] == []  # no inbound rule: Session Manager only
    [volume] = ec2.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])["Volumes"]
    assert volume["Encrypted"] is True
    data = ec2.describe_instance_attribute(InstanceId=instance_id, Attribute="userData")["UserData"]["Value"]
    script = base64.b64decode(data).decode()
    assert f"BP_HEARTBEAT_PARAMETER={NODE.heartbeat_parameter}" in script  # what its node agent needs
    assert script.rstrip().endswith("/opt/worker/bin/configure-node")

    again = _act("create", _create_plan(world))  # a retry of the create finds its instance
    assert again["instance_id"] == instance_id
    plan = {"instance_id": instance_id, "nothing_to_do": False, "resource_name": NODE.resource_name}
    assert _act("stop", plan)["state"] == "stopped"
    assert _act("stop", {**plan, "nothing_to_do": True})["state"] == "stopped"
    started = _act("start", plan)
    assert (started["state"], started["ready"]) == ("running", True)
    assert _act("restart", plan)["ready"] is True
    assert _act("terminate", plan)["state"] == "terminated"
    assert (
        ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [NODE.resource_name]}])["SecurityGroups"]
        == []
    )


def test_a_node_whose_comfyui_never_answers_is_running_but_not_ready(aws_http, world):
    aws_http("ec2").create_tags(
        Resources=[world["image_id"]], Tags=[{"Key": gpu_node.PLANTED_SMOKE_FAILURE_TAG, "Value": "comfyui"}]
    )
    with pytest.raises(DevNodeNotReady, match=r"is running but not ready: ComfyUI did not answer within 30 s"):
        _act("create", _create_plan(world))


def test_an_unfinished_bundle_apply_is_found_on_the_node(aws_http, world):
    instance_id = _act("create", _create_plan(world))["instance_id"]
    apply_document = platform.bundle_apply_document("staging")
    hook = RunCommandHook(aws_conn_id="aws_default")
    assert hook.invocations_of(instance_id, apply_document) == []
    ssm = aws_http("ssm")
    pointer = Fleet("staging", "gpu-default").active_bundle
    ssm.put_parameter(Name=pointer, Value=platform.NO_ACTIVE_BUNDLE, Type="String", Overwrite=True)
    parameters = {"bucketParameter": [platform.models_bucket_parameter()], "prefixParameter": [pointer]}
    command_id = ssm.send_command(DocumentName=apply_document, InstanceIds=[instance_id], Parameters=parameters)[
        "Command"
    ]["CommandId"]
    assert lifecycle.busy_commands_problem(NODE, instance_id, hook.invocations_of(instance_id, apply_document)) is None
    command = ssm_backends["123456789012"]["us-east-1"].get_command_by_id(command_id)
    for invocation in command.invocations:  # what SSM reports while the installer runs
        invocation["Status"] = "InProgress"

    [unfinished] = hook.invocations_of(instance_id, apply_document)
    assert (unfinished["CommandId"], unfinished["Status"]) == (command_id, "InProgress")
    problem = lifecycle.busy_commands_problem(NODE, instance_id, [unfinished])
    assert f"a bundle apply runs on staging/alice-sdxl ({instance_id}): {command_id}" in problem
    probes = hook.invocations_of(instance_id, NODE.health_document)  # the create's readiness probe: ended
    assert [p["Status"] for p in probes] == ["Success"]
    assert lifecycle.busy_commands_problem(NODE, instance_id, probes) is None
