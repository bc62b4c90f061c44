"""gpu_bundle_rollout's cleanup tasks work whichever task failed first: a refused
request, a bundle check, the lock, the pointer move. Each runs as the scheduler runs it
(trigger rule ONE_FAILED / ALL_DONE), with upstream XComs missing where the upstream
failed. ``roll_back`` runs under the lock (in its setup/teardown scope): before the lock
was taken nothing changed, and ``rollout_outcome`` says so itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks import fleet_lock, rollout_undo
from bp_tasks import gpu_bundle_rollout as tasks
from bp_tasks.common import RequestRefused
from include.fleets.lock import Holder
from include.naming.fleet import Fleet
from include.rollouts.rollout import RolloutRequest

RUN = "manual__2026-11-30T00:00:00+00:00"
GOOD = {"fleet_stage": "staging", "fleet_slug": "gpu-default", "bundle_id": "b-1", "strategy": "refresh"}
FLEET = Fleet("staging", "gpu-default")
#: what check_bundle returns for a fleet strategy: the fleet's own pointer moves
CHECKED = {"summary": "bundle b-1", "pointer": FLEET.active_bundle, "dev_node_command": None}


class FakeTaskInstance:
    def __init__(self, states: dict[str, str], xcoms: dict[str, object] | None = None, task_id: str = "x"):
        self.states, self.xcoms, self.task_id, self.dag_id = states, xcoms or {}, task_id, "gpu_bundle_rollout"

    def get_task_states(self, dag_id, run_ids):
        return {run_ids[0]: self.states}

    def xcom_pull(self, task_ids, key="return_value"):
        return self.xcoms.get(task_ids if key == "return_value" else (task_ids, key))


def _params(**conf):
    return {
        **GOOD,
        "aws_conn_id": "aws_default",
        "instance_id": None,
        "min_healthy_percentage": 90,
        "checkpoint_percentages": [50, 100],
        "auto_rollback": True,
        **conf,
    }


def _dag_run(conf):
    return SimpleNamespace(
        dag_id="gpu_bundle_rollout",
        run_id=RUN,
        conf=conf,
        triggering_user_name="ci",
        start_date=datetime(2026, 11, 30, tzinfo=UTC),
    )


DAG = SimpleNamespace(params=dict.fromkeys(_params()))


def _roll_back(request, checked, current, ti):
    """``roll_back`` as the scheduler runs it once the lock was taken, after ``check_bundle``
    and ``read_pointer`` returned ``checked`` and ``current`` (None: failed)."""
    return rollout_undo.roll_back.function(request, checked, current, params=_params(), ti=ti, run_id=RUN)


def _outcome(request, ti, conf=GOOD, **params):
    return tasks.rollout_outcome.function(
        request, params=_params(**params), ti=ti, run_id=RUN, dag_run=_dag_run(conf), dag=DAG
    )


def _audit(aws_http):
    body = aws_http("s3").get_object(Bucket="bp-logs-123456789012", Key=FLEET.rollout_audit_key(RUN))["Body"]
    return json.loads(body.read())


def test_a_refused_request_is_said_audited_and_alerts_no_one(aws_http, baseline, caplog):
    conf = {**GOOD, "strategy": "dev_node"}  # no instance_id: validate_request failed
    params, dag_run = _params(strategy="dev_node"), _dag_run(conf)
    states = {"validate_request": "failed", "acquire_lock": "upstream_failed", "roll_back": "upstream_failed"}
    ti = FakeTaskInstance(states)

    tasks.record_audit.function(None, None, params=params, ti=ti, dag_run=dag_run, dag=DAG)
    with pytest.raises(RequestRefused) as refused:
        _outcome(None, ti, conf, strategy="dev_node")

    paragraph = str(refused.value)
    assert paragraph.startswith("Rollout refused: strategy dev_node needs an instance_id")
    assert paragraph.endswith("Nothing was changed.")
    assert "ALERT" not in caplog.text
    record = _audit(aws_http)
    assert (record["result"], record["reason"], record["triggered_by"]) == ("refused", paragraph, "ci")


def test_a_misspelt_key_is_the_refusal_it_names(aws_http, baseline):
    conf = {**GOOD, "flet_stage": "staging"}

    with pytest.raises(RequestRefused, match=r"unknown conf key\(s\) 'flet_stage' \(did you mean 'fleet_stage'\?\)"):
        _outcome(None, FakeTaskInstance({}), conf)


def test_a_failed_bundle_check_changed_nothing_and_says_so_and_alerts(aws_http, baseline, caplog):
    request = RolloutRequest.from_params(GOOD)
    states = {"check_bundle": "failed", "acquire_lock": "upstream_failed", "roll_back": "upstream_failed"}

    with pytest.raises(AirflowFailException) as failed:
        _outcome(request, FakeTaskInstance(states))

    assert str(failed.value).endswith("failed in check_bundle. Nothing had changed.")
    assert caplog.text.count("ALERT [CRITICAL] Bundle rollout failed on staging/gpu-default") == 1
    assert fleet_lock.release_lock.function(request, params=_params(), dag_run=_dag_run(GOOD)) == (
        f"{FLEET.lock} is not held"
    )


def test_a_lock_held_by_another_run_is_never_released_by_this_one(aws_http, baseline):
    request = RolloutRequest.from_params(GOOD)
    other = Holder.new("gpu_fleet_provision", "someone-else", "fleet apply")
    aws_http("ssm").put_parameter(Name=FLEET.lock, Value=other.value(), Type="String")

    released = fleet_lock.release_lock.function(request, params=_params(), dag_run=_dag_run(GOOD))

    assert (
        released
        == f"{FLEET.lock} is held by gpu_fleet_provision run someone-else (fleet apply), not this run: left as it is"
    )
    assert aws_http("ssm").get_parameter(Name=FLEET.lock)["Parameter"]["Value"] == other.value()


def test_a_refused_pointer_move_restores_nothing(aws_http, baseline):
    request = RolloutRequest.from_params(GOOD)
    current = {"value": "bundles/b-0", "version": 3, "warmup_seconds": 300}
    states = {"move_pointer": "failed", "confirm_pointer": "upstream_failed"}

    undone = _roll_back(request, CHECKED, current, FakeTaskInstance(states))

    assert undone["undone"] == []
    assert "failed in move_pointer" in undone["paragraph"]


def _failed_refresh(aws_http, group: str) -> str:
    """A group of two nodes whose instance refresh replaced one and failed at 50%."""
    ec2, autoscaling = aws_http("ec2"), aws_http("autoscaling")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    template = ec2.create_launch_template(
        LaunchTemplateName=f"{group}-lt", LaunchTemplateData={"ImageId": image, "InstanceType": "g4dn.xlarge"}
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=group,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        MinSize=0,
        MaxSize=2,
        DesiredCapacity=2,
        AvailabilityZones=["us-east-1a"],
        Tags=[{"Key": "emulator:fail-refresh-at", "Value": "50", "PropagateAtLaunch": False}],
    )
    refresh_id = autoscaling.start_instance_refresh(AutoScalingGroupName=group)["InstanceRefreshId"]
    while True:
        found = autoscaling.describe_instance_refreshes(AutoScalingGroupName=group)["InstanceRefreshes"][0]
        if found["Status"] == "Failed":
            assert found["PercentageComplete"] == 50
            return refresh_id


def test_a_pointer_someone_else_moved_is_neither_restored_nor_refreshed_back_onto(aws_http, baseline):
    request = RolloutRequest.from_params(GOOD)
    ssm = aws_http("ssm")
    ssm.put_parameter(Name=FLEET.active_bundle, Value="bundles/b-0", Type="String", Overwrite=True)
    written = ssm.put_parameter(Name=FLEET.active_bundle, Value="bundles/b-1", Type="String", Overwrite=True)
    ssm.put_parameter(Name=FLEET.active_bundle, Value="bundles/b-9", Type="String", Overwrite=True)  # by hand
    refresh_id = _failed_refresh(aws_http, FLEET.auto_scaling_group)
    current = {"value": "bundles/b-0", "version": 1, "warmup_seconds": 60}
    xcoms = {"move_pointer": {"changed": True, "version": written["Version"]}, "start_refresh": refresh_id}
    states = {"move_pointer": "success", "start_refresh": "success", "wait_for_refresh": "failed"}

    undone = _roll_back(request, CHECKED, current, FakeTaskInstance(states, xcoms))

    assert undone["back_refresh_id"] is None
    assert any(
        step.startswith(f"the pointer was NOT restored: {FLEET.active_bundle} changed") for step in undone["undone"]
    )
    assert (
        "the replaced nodes were NOT refreshed back: the pointer holds bundles/b-9, not bundles/b-0" in undone["undone"]
    )
    assert ssm.get_parameter(Name=FLEET.active_bundle)["Parameter"]["Value"] == "bundles/b-9"
    refreshes = aws_http("autoscaling").describe_instance_refreshes(AutoScalingGroupName=FLEET.auto_scaling_group)
    assert len(refreshes["InstanceRefreshes"]) == 1  # no refresh back was started
