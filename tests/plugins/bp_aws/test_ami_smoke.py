"""The AMI smoke test against the emulator and the GPU node double: an instance of the
candidate, its status checks, the smoke document, the output kept, the instance gone."""

from __future__ import annotations

import json

import pytest

from bp_aws.exceptions import SmokeTestFailed
from bp_aws.hooks.ec2_instances import Ec2InstanceHook
from bp_aws.operators.ami_smoke import AmiSmokeTestOperator
from include.amis import smoke
from include.naming import platform
from include.naming.fleet import Fleet
from tests.doubles import gpu_node
from tests.plugins.conftest import resume

FLEET = Fleet("staging", "gpu-default")
ACCOUNT = "123456789012"


@pytest.fixture
def world(aws_http, baseline):
    """A candidate image with bundle b-7 baked, the smoke document, the worker profile."""
    gpu_node.install()
    ec2, ssm, iam = aws_http("ec2"), aws_http("ssm"), aws_http("iam")
    image_id = ec2.register_image(Name="bp-gpu-candidate", RootDeviceName="/dev/sda1")["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": "bundle_id", "Value": "b-7"}])
    ssm.create_document(
        Name=FLEET.smoke_document,
        DocumentType="Command",
        Content='{"schemaVersion": "2.2", "description": "smoke", "mainSteps": '
        '[{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}',
    )
    iam.create_instance_profile(InstanceProfileName=FLEET.worker_instance_profile)
    subnet = ssm.get_parameter(Name=platform.private_subnet_ids())["Parameter"]["Value"].split(",")[0]
    group = ssm.get_parameter(Name=platform.worker_security_group_id())["Parameter"]["Value"]
    return {"image_id": image_id, "subnet_id": subnet, "security_group_id": group}


def _operator(world, **change) -> AmiSmokeTestOperator:
    args = {
        "task_id": "smoke_test_image",
        "image_id": world["image_id"],
        "document_name": FLEET.smoke_document,
        "baked_bundle_id": "b-7",
        "launch": {
            "instance_type": "g5.xlarge",
            "subnet_id": world["subnet_id"],
            "security_group_id": world["security_group_id"],
            "instance_profile": FLEET.worker_instance_profile,
            "tags": smoke.instance_tags(FLEET, world["image_id"], "gpu_ami_build_and_bake", "manual__t"),
        },
        "output_key": FLEET.ami_smoke_key("manual__t"),
        "poll_interval": 1,
        "deferrable": True,
    }
    args.update(change)
    return AmiSmokeTestOperator(**args)


def _smoke_instances(aws_http) -> dict[str, str]:
    reservations = aws_http("ec2").describe_instances(
        Filters=[{"Name": "tag:bp:role", "Values": [platform.AMI_SMOKE_ROLE]}]
    )["Reservations"]
    return {i["InstanceId"]: i["State"]["Name"] for r in reservations for i in r["Instances"]}


def _kept(aws_http) -> dict:
    body = aws_http("s3").get_object(Bucket=platform.logs_bucket(ACCOUNT), Key=FLEET.ami_smoke_key("manual__t"))
    return json.loads(body["Body"].read())


def test_a_good_image_passes_every_check_and_its_instance_is_terminated(aws_http, world, monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__TRIGGER_FIRST_POLL_DELAY", "0")

    verdict = resume(_operator(world))

    assert verdict["passed"]
    assert [c["check"] for c in verdict["checks"]] == ["gpu", "cuda", "comfyui", "worker", "agent", "owners", "bundle"]
    assert verdict["output"] == f"s3://bp-logs-{ACCOUNT}/ami-smoke/staging/gpu-default/manual__t.json"
    assert _kept(aws_http)["stdout"].startswith("PASS gpu: NVIDIA A10G")
    [(instance_id, state)] = _smoke_instances(aws_http).items()
    assert state in ("shutting-down", "terminated")
    [reservation] = aws_http("ec2").describe_instances(InstanceIds=[instance_id])["Reservations"]
    launched = reservation["Instances"][0]
    assert launched["ImageId"] == world["image_id"]
    assert launched["MetadataOptions"]["HttpTokens"] == "required"
    assert launched["SubnetId"] == world["subnet_id"]  # the profile goes with the terminated instance in moto


def test_a_planted_bad_image_fails_the_named_check_and_is_terminated(aws_http, world, monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__TRIGGER_FIRST_POLL_DELAY", "0")
    aws_http("ec2").create_tags(
        Resources=[world["image_id"]], Tags=[{"Key": gpu_node.PLANTED_SMOKE_FAILURE_TAG, "Value": "cuda"}]
    )

    with pytest.raises(SmokeTestFailed) as failed:
        resume(_operator(world))

    said = str(failed.value)
    assert "failed its smoke test" in said
    assert "cuda (AssertionError: torch.cuda.is_available() is False)" in said
    assert "The instance was terminated" in said
    assert not _kept(aws_http)["passed"]
    assert set(_smoke_instances(aws_http).values()) <= {"shutting-down", "terminated"}


def test_status_checks_that_never_pass_fail_as_a_timeout_and_terminate(aws_http, world, monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__TRIGGER_FIRST_POLL_DELAY", "0")
    operator = _operator(world, status_timeout=1)
    with pytest.raises(SmokeTestFailed, match=r"never passed its EC2 status checks .* \(timed out\)"):
        operator.run_checks({}, {"status": "error", "message": "max attempts reached"}, instance_id=_launch(operator))
    assert set(_smoke_instances(aws_http).values()) <= {"shutting-down", "terminated"}


def _launch(operator) -> str:
    return operator._find_or_launch()


def test_a_killed_task_terminates_its_instance_and_a_retry_reuses_a_live_one(aws_http, world):
    operator = _operator(world)
    first = _launch(operator)
    assert _launch(_operator(world)) == first  # a retry finds this run's instance

    operator.instance_id = first
    operator.on_kill()

    assert _smoke_instances(aws_http)[first] in ("shutting-down", "terminated")


def test_a_missing_document_or_profile_is_refused_before_anything_is_launched(aws_http, world):
    with pytest.raises(SmokeTestFailed, match=r"bp-ami-smoke-production does not exist.*gpu_fleet_provision"):
        _operator(world, document_name=platform.ami_smoke_document("production")).execute({})
    launch = {**_operator(world).launch, "instance_profile": "bp-gpu-worker-staging-nowhere"}
    with pytest.raises(SmokeTestFailed, match=r"could not be launched.*Is the fleet provisioned"):
        _operator(world, launch=launch).execute({})
    assert _smoke_instances(aws_http) == {}
    assert Ec2InstanceHook(aws_conn_id="aws_default").instances_tagged(launch["tags"]) == []
