"""gpu_bundle_rollout end to end: the real Airflow services, the emulator (ASG, instance
refreshes, Run Command) and the GPU node double answering the bundle documents."""

from __future__ import annotations

import json
import re
import time

import pytest

from devstack import baseline
from gpu_worker import layout
from include.cli.airflow_client import AirflowApiError
from include.fleets.lock import Holder
from include.naming import platform
from include.naming.dev_node import DevNode
from include.naming.fleet import Fleet
from tests.e2e.helpers import (
    POLL_SECONDS,
    QUICK_VERDICT,
    log,
    plan_refresh_failure,
    provision_fleet,
    remove_fleet,
    sample_bundles,
)

pytestmark = [pytest.mark.e2e, pytest.mark.fleets]

DAG = "gpu_bundle_rollout"
STAGE = "staging"


def _states(client, run) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(DAG, run.run_id)}


def _log(client, run, task_id: str) -> str:
    return log(client, DAG, run, task_id)


def _rollout(client, slug: str, bundle_id: str, strategy: str, **conf):
    run = client.trigger(
        DAG,
        {
            "fleet_stage": STAGE,
            "fleet_slug": slug,
            "bundle_id": bundle_id,
            "strategy": strategy,
            **QUICK_VERDICT,
            **conf,
        },
    )
    # bake_and_refresh runs a whole bake first: about 140 s alone, over 300 s beside the
    # other three stacks and the unit tests under make test
    try:
        return client.wait_for_run(DAG, run.run_id, timeout=600)
    except TimeoutError as error:  # where it stuck, not only that it did
        unfinished = {t: s for t, s in _states(client, run).items() if s not in ("success", "skipped")}
        raise AssertionError(f"{error}; tasks not done: {unfinished}") from None


def _pointer(aws, slug: str) -> dict:
    return aws("ssm").get_parameter(Name=Fleet(STAGE, slug).active_bundle)["Parameter"]


def _audit(aws, slug: str, run) -> dict:
    bucket = platform.logs_bucket("123456789012")
    key = Fleet(STAGE, slug).rollout_audit_key(run.run_id)
    return json.loads(aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def bundles(stack):
    """Two releases of the sample bundle in the models bucket (an admin's uploads)."""
    return sample_bundles(stack)


@pytest.fixture(scope="module")
def fleet(stack, client, bundles):
    """The fleet e2e-rollout, provisioned by gpu_fleet_provision, on bundle v1."""
    provisioned = provision_fleet(stack, client, "e2e-rollout", bundles[0])
    yield provisioned.slug
    remove_fleet(stack, provisioned)


def _scale(aws, slug: str, capacity: int) -> list[str]:
    group = Fleet(STAGE, slug).auto_scaling_group
    aws("autoscaling").set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity)
    found = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    return [i["InstanceId"] for i in found["Instances"]]


def _set_pointer(aws, slug: str, bundle_id: str) -> None:
    aws("ssm").put_parameter(
        Name=Fleet(STAGE, slug).active_bundle, Value=layout.bundle_prefix(bundle_id), Type="String", Overwrite=True
    )


def test_pointer_only_moves_the_pointer_and_leaves_one_audit_record(stack, client, fleet, bundles):
    aws = stack.aws_client()
    _scale(aws, fleet, 0)
    _set_pointer(aws, fleet, bundles[0])

    run = _rollout(client, fleet, bundles[1], "pointer_only")

    assert run.state == "success", _states(client, run)
    assert _pointer(aws, fleet)["Value"] == layout.bundle_prefix(bundles[1])
    states = _states(client, run)
    assert states["start_refresh"] == "skipped"
    assert states["apply_on_dev_node"] == "skipped"
    record = _audit(aws, fleet, run)
    assert (record["from_bundle"], record["to_bundle"]) == (
        layout.bundle_prefix(bundles[0]),
        layout.bundle_prefix(bundles[1]),
    )
    assert (record["result"], record["strategy"], record["triggered_by"]) == ("success", "pointer_only", "admin")
    with pytest.raises(aws("ssm").exceptions.ParameterNotFound):
        aws("ssm").get_parameter(Name=Fleet(STAGE, fleet).lock)


def test_a_refresh_on_an_empty_fleet_stops_after_the_pointer(stack, client, fleet, bundles):
    aws = stack.aws_client()
    _scale(aws, fleet, 0)
    _set_pointer(aws, fleet, bundles[0])

    run = _rollout(client, fleet, bundles[1], "refresh")

    states = _states(client, run)
    assert run.state == "success", states
    assert states["fleet_has_instances"] == "success"
    assert (states["start_refresh"], states["verify_fleet_bundle"]) == ("skipped", "skipped")
    assert "instances that scale from zero boot with" in _log(client, run, "fleet_has_instances")
    assert _pointer(aws, fleet)["Value"] == layout.bundle_prefix(bundles[1])


def test_a_refresh_replaces_every_node_and_checks_each_runs_the_new_bundle(stack, client, fleet, bundles):
    aws = stack.aws_client()
    _scale(aws, fleet, 0)
    _set_pointer(aws, fleet, bundles[0])
    before = _scale(aws, fleet, 2)  # booted with v1

    run = _rollout(client, fleet, bundles[1], "refresh", checkpoint_percentages=[50, 100])

    assert run.state == "success", _states(client, run)
    after = _scale(aws, fleet, 2)
    assert len(after) == 2
    assert not set(after) & set(before)
    verified = _log(client, run, "verify_fleet_bundle")
    assert f"2 node(s) report bundle {bundles[1]}" in verified
    judged = _log(client, run, "judge_refresh")
    assert "Analysis at 50% checkpoint on 2 node(s): success" in judged
    header = ["metric", "before", "run", "old", "bundle", "new", "bundle", "whole", "fleet", "limit", "verdict"]
    assert any(line.split() == header for line in judged.splitlines())
    analyses = _audit(aws, fleet, run)["analyses"]
    assert [(a["checkpoint"], a["verdict"]) for a in analyses] == [
        ("50% checkpoint", "success"),
        ("end of the refresh", "success"),
    ]
    assert _states(client, run)["approve_going_on"] == "skipped"

    # a person clears start_refresh: its setup (the lock) and teardown are cleared with it
    lock = Fleet(STAGE, fleet).lock
    cleared = client.clear_tasks(DAG, run.run_id, ["start_refresh"], downstream=True)
    assert {"acquire_lock", "start_refresh", "release_lock"} <= set(cleared)
    assert "move_pointer" not in cleared
    again = client.wait_for_run(DAG, run.run_id, timeout=300)
    assert again.state == "success", _states(client, again)
    tries = {t["task_id"]: t["try_number"] for t in client.task_instances(DAG, run.run_id)}
    assert (tries["acquire_lock"], tries["start_refresh"], tries["release_lock"], tries["move_pointer"]) == (2, 2, 2, 1)
    retaken = "\n".join(client.task_log_lines(DAG, run.run_id, "acquire_lock", 2))
    assert f"took {lock}" in retaken
    assert f"released {lock}" in "\n".join(client.task_log_lines(DAG, run.run_id, "release_lock", 2))
    with pytest.raises(aws("ssm").exceptions.ParameterNotFound):
        aws("ssm").get_parameter(Name=lock)


def test_a_failed_refresh_restores_the_pointer_and_refreshes_the_nodes_back(stack, client, fleet, bundles):
    aws = stack.aws_client()
    _scale(aws, fleet, 0)
    _set_pointer(aws, fleet, bundles[0])
    _scale(aws, fleet, 2)
    group = Fleet(STAGE, fleet).auto_scaling_group
    plan_refresh_failure(stack, Fleet(STAGE, fleet))
    run = _rollout(client, fleet, bundles[1], "refresh")  # the emulator drops the tag as it plans the failure

    states = _states(client, run)
    assert run.state == "failed"
    assert states["judge_refresh"] == "failed"
    assert (states["roll_back"], states["wait_for_roll_back"], states["release_lock"]) == ("success",) * 3
    assert states["rollout_outcome"] == "failed"
    assert _pointer(aws, fleet)["Value"] == layout.bundle_prefix(bundles[0])
    paragraph = _log(client, run, "rollout_outcome")
    assert f"Rollout of bundle {bundles[1]} to staging/{fleet} (refresh) failed in judge_refresh." in paragraph
    assert f"{Fleet(STAGE, fleet).active_bundle} restored to {layout.bundle_prefix(bundles[0])}" in paragraph
    assert f"The replaced nodes were refreshed back onto {layout.bundle_prefix(bundles[0])}" in paragraph
    group_now = aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    assert len(group_now["Instances"]) == 2
    record = _audit(aws, fleet, run)
    assert record["result"] == "failed"
    assert len(record["rolled_back"]) == 2


def test_two_rollouts_racing_for_a_stale_lock_and_a_fleet_apply_meanwhile_change_the_fleet_once(
    stack, client, fleet, bundles
):
    aws = stack.aws_client()
    _scale(aws, fleet, 0)
    _set_pointer(aws, fleet, bundles[0])
    _scale(aws, fleet, 2)
    lock_name = Fleet(STAGE, fleet).lock
    stale = Holder.new(DAG, "manual__a-run-that-was-deleted", "rollout of bundle b-0 (refresh)")
    aws("ssm").put_parameter(Name=lock_name, Value=stale.value(), Type="String")  # left by a run that is gone
    conf = {"fleet_stage": STAGE, "fleet_slug": fleet, "bundle_id": bundles[1], "strategy": "refresh", **QUICK_VERDICT}
    first, second = client.trigger(DAG, conf), client.trigger(DAG, conf)
    deadline = time.monotonic() + 240
    while not any(_states(client, r).get("judge_refresh") in ("deferred", "running") for r in (first, second)):
        assert time.monotonic() < deadline, [_states(client, r) for r in (first, second)]
        time.sleep(POLL_SECONDS)
    # the winner is refreshing the fleet: a fleet apply of it is refused, naming the rollout
    apply = client.trigger("gpu_fleet_provision", {"fleet_stage": STAGE, "fleet_slug": fleet, "action": "apply"})
    apply = client.wait_for_run("gpu_fleet_provision", apply.run_id, timeout=300)

    runs = [client.wait_for_run(DAG, r.run_id, timeout=300) for r in (first, second)]

    assert sorted(r.state for r in runs) == ["failed", "success"]
    winner, refused = sorted(runs, key=lambda r: r.state != "success")
    assert "took over" in _log(client, winner, "acquire_lock")
    assert _states(client, refused)["acquire_lock"] == "failed"
    assert _states(client, refused)["move_pointer"] == "upstream_failed"
    assert "Refused: " in _log(client, refused, "acquire_lock")
    assert "This run changed nothing." in _log(client, refused, "acquire_lock")
    assert "Nothing had changed." in _log(client, refused, "rollout_outcome")
    assert apply.state == "failed"
    apply_states = {t["task_id"]: t["state"] for t in client.task_instances("gpu_fleet_provision", apply.run_id)}
    assert apply_states["acquire_lock"] == "failed"
    assert apply_states["deploy_fleet_stack"] == "upstream_failed"
    refusal = "\n".join(client.task_log_lines("gpu_fleet_provision", apply.run_id, "acquire_lock", 1))
    assert f"{lock_name} is held by {DAG} run {winner.run_id}" in refusal
    assert _pointer(aws, fleet)["Value"] == layout.bundle_prefix(bundles[1])
    with pytest.raises(aws("ssm").exceptions.ParameterNotFound):
        aws("ssm").get_parameter(Name=lock_name)


def test_a_manifest_with_a_missing_asset_is_refused_before_the_pointer_moves(stack, client, fleet, bundles):
    aws = stack.aws_client()
    broken = baseline.sample_bundle_id("broken")
    manifest = baseline.sample_manifest(broken)
    manifest["assets"][0]["asset_s3_key"] = manifest["assets"][0]["asset_s3_key"][:-8] + "00000000"
    manifest["assets"][0]["sha256"] = manifest["assets"][0]["asset_s3_key"].rsplit("/", 1)[1]
    aws("s3").put_object(
        Bucket=platform.models_bucket("123456789012"),
        Key=layout.manifest_key(layout.bundle_prefix(broken)),
        Body=json.dumps(manifest).encode(),
    )
    before = _pointer(aws, fleet)

    run = _rollout(client, fleet, broken, "refresh")

    assert run.state == "failed"
    assert _states(client, run)["check_bundle"] == "failed"
    assert "is missing" in _log(client, run, "check_bundle")
    assert _pointer(aws, fleet)["Version"] == before["Version"]


def test_dev_node_installs_through_run_command_and_keeps_the_output(stack, client, fleet, bundles):
    aws = stack.aws_client()
    _set_pointer(aws, fleet, bundles[0])
    ec2 = aws("ec2")
    image = aws("ssm").get_parameter(Name=Fleet(STAGE, "gpu-default").ami_pointer)["Parameter"]["Value"]
    dev_node = {"ResourceType": "instance", "Tags": [{"Key": "bp:role", "Value": "dev-node"}]}
    launched = {
        stage: ec2.run_instances(
            ImageId=image,
            InstanceType="g5.xlarge",
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{**dev_node, "Tags": [*dev_node["Tags"], {"Key": "stage", "Value": stage}]}],
        )["Instances"][0]["InstanceId"]
        for stage in ("production", STAGE)
    }
    before = _pointer(aws, fleet)

    refused = _rollout(client, fleet, bundles[1], "dev_node", instance_id=launched["production"])
    assert refused.state == "failed"
    assert "is a dev node of stage 'production', not staging" in _log(client, refused, "check_bundle")
    assert _pointer(aws, fleet)["Version"] == before["Version"]

    instance = launched[STAGE]
    # what gpu_dev_node's create leaves in the registry (its own e2e test creates one for real)
    for field, value in {"instance_id": instance, "state": "running", "owner": "e2e"}.items():
        parameter = DevNode(STAGE, "e2e-rollout-node").registry_parameter(field)
        aws("ssm").put_parameter(Name=parameter, Value=value, Type="String", Overwrite=True)
    run = _rollout(client, fleet, bundles[1], "dev_node", instance_id=instance)

    assert run.state == "success", _states(client, run)
    assert f"{instance} runs bundle {bundles[1]}" in _log(client, run, "check_dev_node")
    # the install moved the node's own pointer, never what the fleet's nodes boot with
    assert _pointer(aws, fleet)["Version"] == before["Version"]
    node_pointer = DevNode(STAGE, "e2e-rollout-node").active_bundle
    assert aws("ssm").get_parameter(Name=node_pointer)["Parameter"]["Value"] == layout.bundle_prefix(bundles[1])
    key = Fleet(STAGE, fleet).asset_sync_key(run.run_id, instance)
    output = json.loads(aws("s3").get_object(Bucket=platform.logs_bucket("123456789012"), Key=key)["Body"].read())
    assert output["status"] == "Success"
    # a retried apply_on_dev_node (a busy CI machine) finds the bundle in place: both count
    assert re.match(rf"bundle {bundles[1]} (active: \d+ file|is already active)", output["stdout"]), output


@pytest.mark.parametrize(
    "change",
    [
        {"fleet_slug": "gpu; rm -rf /"},
        {"bundle_id": "$(reboot)"},
        {"bundle_id": "../../etc"},
        {"strategy": "dev_node", "instance_id": "i-0123456789abcdef0; reboot"},
        {"fleet_slug": "gpu-default\n"},
        {"bundle_id": "b2\n"},
        {"strategy": "dev_node", "instance_id": "i-0123456789abcdef0\n"},
    ],
    ids=["slug", "bundle-subshell", "bundle-traversal", "instance", "slug-newline", "bundle-newline", "id-newline"],
)
def test_injection_strings_are_refused_before_any_task_runs(client, change):
    conf = {"fleet_stage": STAGE, "fleet_slug": "gpu-default", "bundle_id": "b-1", "strategy": "pointer_only"}
    with pytest.raises(AirflowApiError) as refused:
        client.trigger(DAG, {**conf, **change})
    assert refused.value.status == 400


def test_bake_and_refresh_bakes_an_image_first_and_the_new_nodes_boot_it(stack, client, fleet, bundles):
    aws = stack.aws_client()
    _scale(aws, fleet, 0)
    _set_pointer(aws, fleet, bundles[0])
    _scale(aws, fleet, 1)
    ami_before = aws("ssm").get_parameter(Name=Fleet(STAGE, fleet).ami_pointer)["Parameter"]["Value"]
    client.set_paused("gpu_ami_build_and_bake", False)

    run = _rollout(client, fleet, bundles[1], "bake_and_refresh")

    assert run.state == "success", _states(client, run)
    ami_after = aws("ssm").get_parameter(Name=Fleet(STAGE, fleet).ami_pointer)["Parameter"]["Value"]
    assert ami_after != ami_before
    [node] = _scale(aws, fleet, 1)
    [instance] = aws("ec2").describe_instances(InstanceIds=[node])["Reservations"][0]["Instances"]
    assert instance["ImageId"] == ami_after
    [image] = aws("ec2").describe_images(ImageIds=[ami_after])["Images"]
    assert {t["Key"]: t["Value"] for t in image["Tags"]}["bundle_id"] == bundles[1]


def test_a_refused_request_ends_in_one_paragraph_with_every_cleanup_task_green(stack, client, bundles):
    conf = {"fleet_stage": STAGE, "fleet_slug": "gpu-default", "bundle_id": bundles[1], "strategy": "dev_node"}

    run = client.wait_for_run(DAG, client.trigger(DAG, conf).run_id, timeout=300)

    states = _states(client, run)
    assert run.state == "failed"
    assert states["validate_request"] == "failed"
    assert states["record_audit"] == "success"
    # nothing ran under the lock: not its setup, nor the undo inside it, nor its release
    assert {states[t] for t in ("acquire_lock", "roll_back", "release_lock")} == {"upstream_failed"}
    assert states["rollout_outcome"] == "failed"
    assert "Rollout refused: strategy dev_node needs an instance_id like i-0123456789abcdef0, got None. " in _log(
        client, run, "rollout_outcome"
    )
    assert _audit(stack.aws_client(), "gpu-default", run)["result"] == "refused"
