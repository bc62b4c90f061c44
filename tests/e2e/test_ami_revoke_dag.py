"""gpu_ami_revoke end to end: a bad image leaves two fleets (each back to the image it
replaced there), the one with nodes is refreshed, the image is tagged and never reused;
an image revoked while its production promotion awaits approval is refused by
promote_ami; an image that isn't ours is refused before anything changes; revoking a
base image revokes the bakes built from it and moves all three fleets back, under one
approval."""

from __future__ import annotations

import json
import time

import pytest

from devstack import baseline as seeded
from include.amis import revocation
from include.naming import platform
from include.naming.fleet import Fleet
from tests.e2e.helpers import POLL_SECONDS, answer, log, provision_fleet, remove_fleet, run_to_end, scale, states

pytestmark = [pytest.mark.e2e, pytest.mark.amis, pytest.mark.usefixtures("ami_fleets")]

DAG = "gpu_ami_revoke"
BUILD = "gpu_ami_build_and_bake"
DEFAULT = Fleet("staging", "gpu-default")


def _pointer(ssm, fleet: Fleet) -> str:
    return ssm.get_parameter(Name=fleet.ami_pointer)["Parameter"]["Value"]


def _base_image(stack) -> str:
    """The baseline's base image: made outside the pipeline, it has no provenance tags."""
    name = [{"Name": "name", "Values": [seeded.BASE_AMI_NAME]}]
    return stack.aws_client()("ec2").describe_images(Owners=["self"], Filters=name)["Images"][0]["ImageId"]


@pytest.fixture(scope="module")
def second_fleet(stack, client):
    """staging/e2e-revoke: its pointer held another image before the bad one came."""
    ssm = stack.aws_client()("ssm")
    fleet = Fleet("staging", "e2e-revoke")
    ssm.put_parameter(
        Name=fleet.ami_pointer,
        Value=_base_image(stack),
        Type="String",
        DataType="aws:ec2:image",
        Overwrite=True,
    )
    provision_fleet(stack, client, fleet.slug, None)  # its pointer now names staging/gpu-default's image
    yield fleet
    remove_fleet(stack, fleet)


def test_a_revocation_restores_each_pointer_refreshes_the_fleet_with_nodes_and_is_never_reused(
    stack, client, second_fleet
):
    aws = stack.aws_client()
    ssm, ec2 = aws("ssm"), aws("ec2")
    # the fleet's image is one this pipeline built (a bake of today's inputs: built, or unchanged)
    built = run_to_end(client, BUILD, {"fleet_stage": "staging", "fleet_slug": "gpu-default"})
    assert built.state == "success", states(client, BUILD, built)
    bad = _pointer(ssm, DEFAULT)
    history = [v["Value"] for v in ssm.get_parameter_history(Name=DEFAULT.ami_pointer)["Parameters"]]
    default_before = history[history.index(bad) - 1]
    ssm.put_parameter(Name=second_fleet.ami_pointer, Value=bad, Type="String", DataType="aws:ec2:image", Overwrite=True)
    second_before = [v["Value"] for v in ssm.get_parameter_history(Name=second_fleet.ami_pointer)["Parameters"]][-2]
    scale(stack, second_fleet, 1)

    run = run_to_end(client, DAG, {"image_id": bad, "reason": "driver crash under load (INC-42)"})

    found = states(client, DAG, run)
    assert run.state == "success", found
    assert found["approve_revocation"] == "skipped"  # staging only
    assert (_pointer(ssm, DEFAULT), _pointer(ssm, second_fleet)) == (default_before, second_before)
    [image] = ec2.describe_images(ImageIds=[bad])["Images"]
    tags = {t["Key"]: t["Value"] for t in image["Tags"]}
    assert (tags["revoked"], tags["revoked_reason"], tags["revoked_by_run"]) == (
        "true", "driver crash under load (INC-42)", run.run_id
    )  # fmt: skip
    refreshes = aws("autoscaling").describe_instance_refreshes(AutoScalingGroupName=second_fleet.auto_scaling_group)
    assert [r["Status"] for r in refreshes["InstanceRefreshes"]][:1] == ["Successful"]
    assert (
        aws("autoscaling").describe_instance_refreshes(AutoScalingGroupName=DEFAULT.auto_scaling_group)[
            "InstanceRefreshes"
        ]
        == []
    )  # no nodes: nothing to replace
    key = platform.ami_revocation_audit_key(bad, run.run_id)
    record = json.loads(aws("s3").get_object(Bucket=platform.logs_bucket("123456789012"), Key=key)["Body"].read())
    assert len(record["restored"]) == 2
    assert record["refresh_state"] == "success"
    assert "was revoked (driver crash under load (INC-42))" in log(client, DAG, run, "record_revocation")
    for lock in (DEFAULT.lock, second_fleet.lock):  # given back
        assert not ssm.get_parameters(Names=[lock])["Parameters"]

    # a bake of the same inputs never takes the revoked image back
    rebuilt = run_to_end(client, BUILD, {"fleet_stage": "staging", "fleet_slug": "gpu-default"})
    assert rebuilt.state == "success", states(client, BUILD, rebuilt)
    assert client.xcom(BUILD, rebuilt.run_id, "plan_build")["image_id"] != bad
    assert _pointer(ssm, DEFAULT) != bad


def test_an_image_that_is_not_ours_is_refused_before_anything_changes(stack, client):
    ssm = stack.aws_client()("ssm")
    base = _base_image(stack)
    before = ssm.get_parameter(Name=DEFAULT.ami_pointer)["Parameter"]["Version"]

    run = run_to_end(client, DAG, {"image_id": base, "reason": "not ours"})

    found = states(client, DAG, run)
    assert run.state == "failed"
    assert found["plan_revocation"] == "failed"
    assert found["revoke"] == "upstream_failed"
    assert "is not an image this platform built" in log(client, DAG, run, "plan_revocation")
    assert ssm.get_parameter(Name=DEFAULT.ami_pointer)["Parameter"]["Version"] == before
    tags = {t["Key"] for t in stack.aws_client()("ec2").describe_images(ImageIds=[base])["Images"][0]["Tags"]}
    assert revocation.REVOKED_TAG not in tags


def test_an_image_revoked_while_its_promotion_awaits_approval_is_never_promoted(stack, client, approver):
    ssm = stack.aws_client()("ssm")
    fleet = Fleet("production", "gpu-default")
    before = ssm.get_parameter(Name=fleet.ami_pointer)["Parameter"]
    conf = {"fleet_stage": "production", "fleet_slug": "gpu-default", "mode": "bake", "force_build": True}
    promotion = client.trigger(BUILD, conf)
    deadline = time.monotonic() + 300
    while states(client, BUILD, promotion).get("approve_promotion") != "awaiting_input":
        assert time.monotonic() < deadline, states(client, BUILD, promotion)
        time.sleep(POLL_SECONDS)
    candidate = client.xcom(BUILD, promotion.run_id, "check_image", key="ami_id")

    revoked = client.trigger(DAG, {"image_id": candidate, "reason": "CVE-2026-0001 in the driver"})
    answer(client, DAG, revoked, "approve_revocation", by=approver)  # a production image
    revoked = client.wait_for_run(DAG, revoked.run_id, timeout=300)
    assert revoked.state == "success", states(client, DAG, revoked)
    answer(client, BUILD, promotion, "approve_promotion", by=approver)
    promotion = client.wait_for_run(BUILD, promotion.run_id, timeout=300)

    assert promotion.state == "failed"
    assert states(client, BUILD, promotion)["promote_ami"] == "failed"
    said = log(client, BUILD, promotion, "promote_ami")
    assert f"AMI {candidate} was revoked by {revoked.run_id}: CVE-2026-0001 in the driver" in said
    assert "It is never promoted again" in said
    assert ssm.get_parameter(Name=fleet.ami_pointer)["Parameter"]["Version"] == before["Version"]


def _copy(stack, source: str, name: str, tags: dict[str, str]) -> str:
    """A copy of ``source`` in this account with ``tags``: an image as a bake leaves it."""
    ec2 = stack.aws_client()("ec2")
    image_id = ec2.copy_image(SourceImageId=source, SourceRegion=ec2.meta.region_name, Name=name)["ImageId"]
    ec2.create_tags(Resources=[image_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return image_id


def test_revoking_a_base_image_revokes_the_bakes_built_from_it_under_one_approval(stack, client, approver):
    aws = stack.aws_client()
    ssm, ec2 = aws("ssm"), aws("ec2")
    seed = _base_image(stack)

    def ours(stage: str, slug: str, **extra: str) -> dict[str, str]:
        return {"fleet_stage": stage, "fleet_slug": slug, "airflow_run_id": "manual__planted", **extra}

    base = _copy(stack, seed, "e2e-inherit-base", ours("staging", "e2e-inh-a"))
    bakes = [_copy(stack, seed, f"e2e-inherit-bake-{n}", ours("staging", "e2e-inh-b", base_ami=base)) for n in (1, 2)]
    fleets = [Fleet("staging", "e2e-inh-a"), Fleet("staging", "e2e-inh-b"), Fleet("production", "e2e-inh-c")]
    before = [_copy(stack, seed, f"e2e-inherit-old-{n}", {}) for n in range(3)]
    for fleet, old, bad in zip(fleets, before, [base, *bakes], strict=True):
        for value in (old, bad):  # each pointer held a good image, then one of the tree
            ssm.put_parameter(Name=fleet.ami_pointer, Value=value, Type="String", DataType="aws:ec2:image",
                              Overwrite=True)  # fmt: skip
    try:
        run = client.trigger(DAG, {"image_id": base, "reason": "driver crash under load"})
        answer(client, DAG, run, "approve_revocation", by=approver)  # one approval for the whole tree
        run = client.wait_for_run(DAG, run.run_id, timeout=300)

        assert run.state == "success", states(client, DAG, run)
        plan = log(client, DAG, run, "plan_revocation")
        assert all(f"{bake}: baked from {base} (staging), revoked with it" in plan for bake in bakes)
        assert [_pointer(ssm, fleet) for fleet in fleets] == before  # all three back, each to its own
        for image, why in [(base, "driver crash under load"), *((b, f"(baked from revoked {base})") for b in bakes)]:
            tags = {t["Key"]: t["Value"] for t in ec2.describe_images(ImageIds=[image])["Images"][0]["Tags"]}
            assert tags[revocation.REVOKED_TAG] == "true"
            assert why in tags[revocation.REVOKED_REASON_TAG]
    finally:
        for fleet in fleets:
            ssm.delete_parameter(Name=fleet.ami_pointer)
