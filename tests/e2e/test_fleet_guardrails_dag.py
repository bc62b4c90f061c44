"""gpu_fleet_guardrails on the real services: a planted leak on a staging fleet found,
remediated (capacity 0, protection cleared), audited and alerted, and a second run
finding nothing; a busy fleet gives no finding; a production fix waits for its two
approvals in a gpu_fleet_remediation run of its own while staging is inspected and fixed,
and changes nothing when it is rejected."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from devstack.fleet_metrics import put_minutely
from devstack.users import APPROVERS
from include.amis import smoke
from include.fleets.lock import Holder
from include.naming.fleet import Fleet
from tests.e2e.helpers import (
    answer,
    awaiting,
    log,
    provision_fleet,
    run_to_end,
    sample_bundles,
    scale,
    states,
    topic_inbox,
)

pytestmark = [pytest.mark.e2e, pytest.mark.services]
DAG = "gpu_fleet_guardrails"
REMEDIATION = "gpu_fleet_remediation"


@pytest.fixture(scope="module")
def fleet(stack, client):
    provisioned = provision_fleet(stack, client, "e2e-guard", sample_bundles(stack)[0])
    client.set_paused(DAG, False)
    return provisioned


@pytest.fixture(scope="module")
def alerts_inbox(stack):
    """An SQS queue subscribed to the staging alert topic: what on-call receives."""
    return topic_inbox(stack, "bp-ops-alerts-staging", "guardrails-inbox")


def _metrics(stack, fleet: Fleet, queue: float, active: float, minutes: int) -> None:
    """What the fleet's workers report each minute, for the last ``minutes``."""
    series = {"QueueDepth": [queue] * minutes, "ActiveWorkers": [active] * minutes}
    put_minutely(stack.aws_client()("cloudwatch"), fleet, series, datetime.now(UTC))


def _group(stack, fleet: Fleet) -> dict:
    groups = stack.aws_client()("autoscaling").describe_auto_scaling_groups(
        AutoScalingGroupNames=[fleet.auto_scaling_group]
    )
    return groups["AutoScalingGroups"][0]


def _conf(fleet: Fleet) -> dict:
    return {"fleet_stage": fleet.stage, "fleet_slug": fleet.slug}


def _audit(stack, fleet: Fleet, run) -> list[str]:
    prefix = f"audit/remediations/{fleet.stage}/{fleet.slug}/{run.run_id}/"
    listing = stack.aws_client()("s3").list_objects_v2(Bucket=stack.logs_bucket, Prefix=prefix)
    return [o["Key"].removeprefix(prefix) for o in listing.get("Contents", [])]


def test_a_leak_is_found_fixed_audited_and_alerted_and_a_second_run_finds_nothing(stack, client, fleet, alerts_inbox):
    instances = scale(stack, fleet, 2)
    stack.aws_client()("autoscaling").set_instance_protection(
        AutoScalingGroupName=fleet.auto_scaling_group, InstanceIds=instances[:1], ProtectedFromScaleIn=True
    )
    _metrics(stack, fleet, queue=0, active=0, minutes=60)  # idle for an hour, scale_to_zero_minutes 15

    run = run_to_end(client, DAG, _conf(fleet))

    assert run.state == "success", states(client, DAG, run)
    report = log(client, DAG, run, "report")
    assert "scale-to-zero leak" in report
    assert "stuck scale-in protection" in report
    assert states(client, DAG, run)["request_production_fixes"] == "skipped"  # staging: no approval
    fixed = log(client, DAG, run, "remediate_staging")
    assert "$0.45/hour of GPU spend stopped" in fixed  # two g4dn.xlarge at $0.2256
    group = _group(stack, fleet)
    assert group["DesiredCapacity"] == 0
    assert not any(i["ProtectedFromScaleIn"] for i in group["Instances"])
    assert _audit(stack, fleet, run) == ["scale_to_zero.jsonl"]
    subjects = [m["Subject"] for m in alerts_inbox()]
    assert f"[WARNING] Guardrails: 3 finding(s) on {fleet}" in subjects or any(
        s.startswith("[CRITICAL] Guardrails:") and str(fleet) in s for s in subjects
    ), subjects

    again = run_to_end(client, DAG, _conf(fleet))

    assert again.state == "success"
    assert "(no finding" in log(client, DAG, again, "report")
    assert states(client, DAG, again)["remediate_staging"] == "skipped"
    assert _audit(stack, fleet, again) == []


def _remediation(client, fleet: Fleet):
    """The gpu_fleet_remediation run the guardrails started for ``fleet`` (the newest)."""
    runs = [r for r in client.list_runs(REMEDIATION) if r.run_id.startswith(fleet.remediation_run_prefix)]
    assert runs, f"no {REMEDIATION} run for {fleet}"
    return runs[0]


def test_a_production_fix_waits_for_two_approvals_in_its_own_run_while_staging_inspections_go_on(
    stack, client, fleet, approver
):
    production = Fleet("production", "e2e-guard")
    ssm = stack.aws_client()("ssm")
    stale = Holder.new("gpu_bundle_rollout", "manual__long-gone", "rollout of bundle b (refresh)").value()
    ssm.put_parameter(Name=production.lock, Value=stale, Type="String", Overwrite=True)

    asked = run_to_end(client, DAG, _conf(production))

    # the inspection ends at once: the production fix waits in a run of its own
    assert asked.state == "success", states(client, DAG, asked)
    pending = _remediation(client, production)
    assert f"{production}: its approvals are asked in " in log(client, DAG, asked, "request_production_fixes")
    awaiting(client, REMEDIATION, pending, "approve_remediation")

    # meanwhile staging is inspected twice (as the 15-minute schedule would) and its leak fixed
    scale(stack, fleet, 2)
    _metrics(stack, fleet, queue=0, active=0, minutes=60)
    fixed = run_to_end(client, DAG, _conf(fleet))
    assert fixed.state == "success", states(client, DAG, fixed)
    assert _group(stack, fleet)["DesiredCapacity"] == 0
    assert "(no finding" in log(client, DAG, run_to_end(client, DAG, _conf(fleet)), "report")
    # and a second production inspection does not ask again while the first question waits
    again = run_to_end(client, DAG, _conf(production))
    assert "is still waiting for its approvals: not asked again" in log(client, DAG, again, "request_production_fixes")
    assert _remediation(client, production).run_id == pending.run_id
    assert ssm.get_parameter(Name=production.lock)["Parameter"]["Value"] == stale  # nothing changed yet

    # the guardrails started it, nobody did: two approvers, the second not the first
    answer(client, REMEDIATION, pending, "approve_remediation", by=approver)
    answer(client, REMEDIATION, pending, "confirm_remediation", by=stack.client(user=APPROVERS[1]))
    done = client.wait_for_run(REMEDIATION, pending.run_id, timeout=300)

    assert done.state == "success", states(client, REMEDIATION, done)
    said = log(client, REMEDIATION, done, "remediate")
    assert "released /bp/fleets/production/e2e-guard/change_lock" in said
    assert not ssm.get_parameters(Names=[production.lock])["Parameters"]
    assert _audit(stack, production, done) == ["release_lock.jsonl"]


def test_a_rejected_production_fix_changes_nothing(stack, client, approver):
    production = Fleet("production", "e2e-guard")
    ssm = stack.aws_client()("ssm")
    stale = Holder.new("gpu_bundle_rollout", "manual__gone-again", "rollout of bundle c (refresh)").value()
    ssm.put_parameter(Name=production.lock, Value=stale, Type="String", Overwrite=True)

    asked = client.trigger(REMEDIATION, _conf(production))  # a person asks: one approval, by another person
    answer(client, REMEDIATION, asked, "approve_remediation", "Reject", by=approver)
    rejected = client.wait_for_run(REMEDIATION, asked.run_id, timeout=300)

    assert rejected.state == "failed"
    assert "nothing was remediated in production" in log(client, REMEDIATION, rejected, "approve_remediation")
    assert states(client, REMEDIATION, rejected)["remediate"] in ("upstream_failed", "skipped")
    assert ssm.get_parameter(Name=production.lock)["Parameter"]["Value"] == stale
    ssm.delete_parameter(Name=production.lock)


def test_a_busy_fleet_gives_no_finding(stack, client, fleet):
    # after the leaks: the busy minutes stay in CloudWatch beside the idle ones planted later
    scale(stack, fleet, 1)
    _metrics(stack, fleet, queue=3, active=1, minutes=5)

    run = run_to_end(client, DAG, _conf(fleet))

    assert run.state == "success"
    assert "(no finding" in log(client, DAG, run, "report")
    assert _group(stack, fleet)["DesiredCapacity"] == 1  # left as it is


def test_a_smoke_test_instance_left_by_a_dead_build_run_is_found_and_terminated(stack, client, fleet):
    ec2 = stack.aws_client()("ec2")
    image = ec2.describe_images(
        ImageIds=[stack.aws_client()("ssm").get_parameter(Name=fleet.ami_pointer)["Parameter"]["Value"]]
    )
    tags = smoke.instance_tags(
        fleet, image["Images"][0]["ImageId"], "gpu_ami_build_and_bake", "manual__killed-while-deferred"
    )
    [left] = ec2.run_instances(
        ImageId=image["Images"][0]["ImageId"],
        InstanceType="g4dn.xlarge",
        MinCount=1,
        MaxCount=1,
        TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}],
    )["Instances"]

    run = run_to_end(client, DAG, _conf(fleet))

    assert run.state == "success", states(client, DAG, run)
    assert f"{left['InstanceId']} (g4dn.xlarge) smoke-tested" in log(client, DAG, run, "report")
    assert f"terminated {left['InstanceId']}" in log(client, DAG, run, "remediate_staging")
    [reservation] = ec2.describe_instances(InstanceIds=[left["InstanceId"]])["Reservations"]
    assert reservation["Instances"][0]["State"]["Name"] in ("shutting-down", "terminated")
    assert "terminate_smoke_instance.jsonl" in _audit(stack, fleet, run)
