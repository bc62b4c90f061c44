"""gpu_ami_build_and_bake end to end: the real Airflow services, the emulator, the
packer test double the operator is pointed at by configuration, and the GPU node double
that answers the smoke-test document."""

from __future__ import annotations

import json
import time

import pytest

from include.cli.airflow_client import AirflowApiError
from include.naming import platform
from include.naming.fleet import Fleet
from tests.doubles.gpu_node import PLANTED_SMOKE_FAILURE_TAG
from tests.e2e.helpers import POLL_SECONDS, log, states

pytestmark = [pytest.mark.e2e, pytest.mark.amis, pytest.mark.usefixtures("ami_fleets")]

DAG = "gpu_ami_build_and_bake"


def _pointer(ssm, stage, slug):
    return ssm.get_parameter(Name=Fleet(stage, slug).ami_pointer)["Parameter"]


def _state(client, run_id, task_id):
    return next((ti["state"] for ti in client.task_instances(DAG, run_id) if ti["task_id"] == task_id), None)


def _live_smoke_instances(ec2) -> list[str]:
    found = ec2.describe_instances(
        Filters=[
            {"Name": "tag:bp:role", "Values": [platform.AMI_SMOKE_ROLE]},
            {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]},
        ]
    )
    return [i["InstanceId"] for r in found["Reservations"] for i in r["Instances"]]


def _bake(client, **conf):
    run = client.trigger(DAG, {"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake", **conf})
    return client.wait_for_run(DAG, run.run_id, timeout=300)


def test_a_staging_bake_builds_checks_promotes_and_applies_retention(stack, client):
    ssm, ec2 = stack.aws_client()("ssm"), stack.aws_client()("ec2")
    before = _pointer(ssm, "staging", "gpu-default")

    run = _bake(client, force_build=True)  # an earlier test may have built these inputs already

    found = states(client, DAG, run)
    assert run.state == "success", found
    assert found["smoke_test_image"] == "success"
    assert found["approve_promotion"] == "skipped"  # staging promotes directly
    assert found["start_instance_refresh"] == "skipped"
    assert found["apply_ami_retention"] == "success"  # after the promotion, without a refresh
    after = _pointer(ssm, "staging", "gpu-default")
    assert after["Value"] != before["Value"]
    assert after["DataType"] == "aws:ec2:image"
    [image] = ec2.describe_images(ImageIds=[after["Value"]])["Images"]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert tags["previous_ami"] == before["Value"]
    assert (tags["fleet_stage"], tags["fleet_slug"], tags["airflow_run_id"]) == ("staging", "gpu-default", run.run_id)
    assert tags["bundle_id"] != platform.NO_ACTIVE_BUNDLE
    packer_log = list(client.task_log_lines(DAG, run.run_id, "packer_build", 1))
    assert any(f"Packer built {after['Value']}" in line for line in packer_log), packer_log
    assert len(tags["input_fingerprint"]) == 64
    # the smoke test booted the candidate in the fleet, kept its output, and left nothing running
    key = Fleet("staging", "gpu-default").ami_smoke_key(run.run_id)
    kept = json.loads(
        stack.aws_client()("s3").get_object(Bucket=platform.logs_bucket("123456789012"), Key=key)["Body"].read()
    )
    assert kept["passed"]
    assert kept["image_id"] == after["Value"]
    assert [c["check"] for c in kept["checks"]] == ["gpu", "cuda", "comfyui", "worker", "agent", "owners", "bundle"]
    assert _live_smoke_instances(ec2) == []


def test_a_second_bake_of_the_same_inputs_skips_packer_and_changes_nothing(stack, client):
    ssm = stack.aws_client()("ssm")
    first = _bake(client)
    before = _pointer(ssm, "staging", "gpu-default")

    run = _bake(client)

    found = states(client, DAG, run)
    assert run.state == "success", found
    assert found["report_unchanged"] == "success"
    assert (found["packer_build"], found["smoke_test_image"], found["promote_ami"]) == ("skipped",) * 3
    assert found["apply_ami_retention"] == "skipped"  # a run that changed nothing prunes nothing
    assert _pointer(ssm, "staging", "gpu-default")["Version"] == before["Version"]
    said = log(client, DAG, run, "report_unchanged")
    assert f"Unchanged: {before['Value']} was built from the same inputs" in said, (first.state, said)


def test_a_planted_bad_image_fails_its_smoke_test_and_the_pointer_stays(stack, client):
    ec2, ssm = stack.aws_client()("ec2"), stack.aws_client()("ssm")
    before = _pointer(ssm, "staging", "gpu-default")
    planted = [{"Key": PLANTED_SMOKE_FAILURE_TAG, "Value": "cuda"}]
    ec2.create_tags(Resources=[before["Value"]], Tags=planted)  # a broken driver: every bake on it breaks
    try:
        run = _bake(client, force_build=True)
    finally:
        ec2.delete_tags(Resources=[before["Value"]], Tags=planted)

    found = states(client, DAG, run)
    assert run.state == "failed"
    assert found["smoke_test_image"] == "failed"
    assert found["promote_ami"] == "upstream_failed"
    assert _pointer(ssm, "staging", "gpu-default")["Version"] == before["Version"]
    said = log(client, DAG, run, "smoke_test_image")
    assert "failed its smoke test" in said
    assert "cuda (AssertionError: torch.cuda.is_available() is False)" in said
    assert _live_smoke_instances(ec2) == []


def test_a_bake_without_an_active_bundle_fails_before_packer_and_changes_nothing(stack, client):
    ssm = stack.aws_client()("ssm")
    name = Fleet("staging", "gpu-default").active_bundle
    active = ssm.get_parameter(Name=name)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value=platform.NO_ACTIVE_BUNDLE, Type="String", Overwrite=True)
    before = _pointer(ssm, "staging", "gpu-default")
    try:
        run = client.trigger(DAG, {"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake"})
        run = client.wait_for_run(DAG, run.run_id, timeout=240)
    finally:
        ssm.put_parameter(Name=name, Value=active, Type="String", Overwrite=True)

    found = states(client, DAG, run)
    assert run.state == "failed"
    assert found["resolve_inputs"] == "failed"
    assert found["packer_build"] == "upstream_failed"
    assert _pointer(ssm, "staging", "gpu-default")["Version"] == before["Version"]
    lines = list(client.task_log_lines(DAG, run.run_id, "resolve_inputs", 1))
    assert any("there is nothing to bake" in line and "Nothing was built or changed" in line for line in lines)


def test_bad_params_are_refused_by_the_schema(client):
    with pytest.raises(AirflowApiError) as refused:
        client.trigger(DAG, {"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "rebuild-all"})
    assert refused.value.status == 400


def test_a_production_promotion_waits_for_a_second_persons_approval(stack, client, approver):
    ssm = stack.aws_client()("ssm")
    staging_ami = _pointer(ssm, "staging", "gpu-default")["Value"]
    ssm.put_parameter(
        Name=Fleet("production", "gpu-default").ami_pointer,
        Value=staging_ami,
        Type="String",
        DataType="aws:ec2:image",
        Overwrite=True,
    )
    conf = {"fleet_stage": "production", "fleet_slug": "gpu-default", "mode": "base"}

    run = client.trigger(DAG, conf)
    deadline = time.monotonic() + 240
    while _state(client, run.run_id, "approve_promotion") != "awaiting_input":
        assert time.monotonic() < deadline, "the approval never became available"
        time.sleep(POLL_SECONDS)
    assert _pointer(ssm, "production", "gpu-default")["Value"] == staging_ami  # nothing promoted before approval
    # answered at once: Airflow 3.3.2 may fail the resumed approval (#72716); its retry keeps the answer
    with pytest.raises(AirflowApiError) as not_theirs:  # admin triggered it; production needs the approver
        client.respond(DAG, run.run_id, "approve_promotion", ["Approve"])
    assert not_theirs.value.status == 403
    approver.respond(DAG, run.run_id, "approve_promotion", ["Approve"])
    run = client.wait_for_run(DAG, run.run_id, timeout=240)

    assert run.state == "success"
    promoted = _pointer(ssm, "production", "gpu-default")["Value"]
    assert promoted != staging_ami
