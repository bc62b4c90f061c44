import pytest
from airflow.sdk.exceptions import TaskDeferred

from bp_aws.exceptions import AwsResourceNotFound, CapacityNotReached, InstanceRefreshConflict, InstanceRefreshFailed
from bp_aws.hooks.autoscaling import AutoScalingHook
from bp_aws.operators.autoscaling import (
    SetDesiredCapacityOperator,
    StartInstanceRefreshOperator,
    StopInstanceRefreshOperator,
)
from bp_aws.sensors.autoscaling import AsgCapacitySensor, InstanceRefreshSensor
from devstack.emulator import autoscaling as emulated
from tests.plugins.conftest import resume, run_trigger

FAST = {"waiter_delay": 0, "waiter_max_attempts": 50}


def _start(fleet, version=None, **kwargs):
    desired = {"LaunchTemplate": {"LaunchTemplateId": fleet.template_id, "Version": version}} if version else None
    return StartInstanceRefreshOperator(
        task_id="refresh",
        auto_scaling_group_name=fleet.group,
        preferences=kwargs.pop("preferences", {"MinHealthyPercentage": 50, "InstanceWarmup": 0}),
        desired_configuration=desired,
        **FAST,
        **kwargs,
    )


def _status(aws_http, fleet, refresh_id):
    hook = AutoScalingHook()
    return hook.describe_instance_refreshes(fleet.group, refresh_id)[0]["Status"]


def test_a_refresh_replaces_every_instance_with_the_new_image(aws_http, fleet):
    image, version = fleet.new_version(aws_http)
    old_instances = set(fleet.instance_ids(aws_http))

    refresh_id = _start(fleet, version).execute({})

    assert _status(aws_http, fleet, refresh_id) == "Successful"
    assert fleet.images_of_instances(aws_http) == {image}
    assert old_instances.isdisjoint(fleet.instance_ids(aws_http))


def test_the_deferrable_refresh_runs_its_trigger_and_resumes(aws_http, fleet):
    image, version = fleet.new_version(aws_http)
    operator = _start(fleet, version, deferrable=True)

    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.trigger.serialize()[1]["auto_scaling_group_name"] == fleet.group

    event = run_trigger(deferred.value.trigger)
    refresh_id = operator.execute_complete({}, event)

    assert event["status"] == "success"
    assert _status(aws_http, fleet, refresh_id) == "Successful"
    assert fleet.images_of_instances(aws_http) == {image}


def test_a_running_refresh_is_refused_by_default(aws_http, fleet):
    running = AutoScalingHook().start_instance_refresh(fleet.group, {})

    # Reading the refresh moves the emulated one along, so it may already be InProgress.
    with pytest.raises(
        InstanceRefreshConflict, match=f"instance refresh {running} of {fleet.group}: (Pending|InProgress)"
    ):
        _start(fleet).execute({})


def test_a_running_refresh_can_be_cancelled_first(aws_http, fleet):
    running = AutoScalingHook().start_instance_refresh(fleet.group, {})

    refresh_id = _start(fleet, if_refresh_running="cancel").execute({})

    assert _status(aws_http, fleet, running) == "Cancelled"
    assert _status(aws_http, fleet, refresh_id) == "Successful"


def test_a_running_refresh_can_be_waited_for_deferrably(aws_http, fleet):
    running = AutoScalingHook().start_instance_refresh(fleet.group, {})

    refresh_id = resume(_start(fleet, if_refresh_running="wait", deferrable=True))

    assert _status(aws_http, fleet, running) == "Successful"
    assert _status(aws_http, fleet, refresh_id) == "Successful"
    assert refresh_id != running


def test_unknown_preferences_are_refused_before_any_call(aws_http, fleet):
    with pytest.raises(ValueError, match="unknown instance refresh preference"):
        _start(fleet, preferences={"MinHealthy": 90}).execute({})


def test_the_sensor_succeeds_and_logs_progress_as_it_changes(aws_http, fleet, capsys):
    _, version = fleet.new_version(aws_http)
    refresh_id = _start(fleet, version, wait_for_completion=False).execute({})
    sensor = InstanceRefreshSensor(
        task_id="wait", auto_scaling_group_name=fleet.group, instance_refresh_id=refresh_id, poke_interval=0
    )

    while not sensor.poke({}):
        pass

    progress = [
        line.split("] ", 1)[1].rsplit(" [", 1)[0]
        for line in capsys.readouterr().out.splitlines()
        if "] instance refresh " in line
    ]
    assert any("InProgress, 50% complete, 1 instance(s) to update" in line for line in progress), progress
    assert progress[-1].startswith(f"instance refresh {refresh_id} of {fleet.group}: Successful, 100% complete")
    assert len(progress) == len(set(progress)), "each state is logged once, when it changes"


def _fail(fleet, **kwargs):
    emulated.plan_failure(fleet.group, **kwargs)


@pytest.mark.parametrize(
    ("preferences", "version", "break_it", "final", "reason"),
    [
        ({}, None, lambda f: _fail(f, reason="Health checks failed on i-1"), "Failed", "Health checks failed on i-1"),
        ({}, None, lambda f: AutoScalingHook().cancel_instance_refresh(f.group), "Cancelled", "cancelled"),
        ({"AutoRollback": True}, "2", lambda f: _fail(f, reason="Alarm"), "RollbackSuccessful", "Alarm"),
        (
            {"AutoRollback": True},
            "2",
            lambda f: _fail(f, reason="Alarm", rollback_failure_reason="Launch failed during rollback"),
            "RollbackFailed",
            "Launch failed during rollback",
        ),
    ],
)
@pytest.mark.parametrize("deferrable", [False, True])
def test_the_sensor_fails_on_each_failure_state_with_the_reason(
    aws_http, fleet, preferences, version, break_it, final, reason, deferrable
):
    fleet.new_version(aws_http)
    refresh_id = _start(fleet, version, preferences=preferences, wait_for_completion=False).execute({})
    break_it(fleet)
    sensor = InstanceRefreshSensor(
        task_id="wait",
        auto_scaling_group_name=fleet.group,
        instance_refresh_id=refresh_id,
        poke_interval=0,
        timeout=60,
        deferrable=deferrable,
    )

    def wait_until_done():
        if deferrable:
            return resume(sensor)
        while not sensor.poke({}):
            pass
        return None

    with pytest.raises(InstanceRefreshFailed) as failed:
        wait_until_done()

    assert f"of {fleet.group}: {final}" in str(failed.value)
    assert reason in str(failed.value)


def test_rollback_restores_the_previous_image(aws_http, fleet):
    _, version = fleet.new_version(aws_http)
    _start(fleet, version, wait_for_completion=False).execute({})
    AutoScalingHook().describe_instance_refreshes(fleet.group)  # Pending -> InProgress
    AutoScalingHook().describe_instance_refreshes(fleet.group)  # one instance replaced

    status = StopInstanceRefreshOperator(task_id="stop", auto_scaling_group_name=fleet.group, **FAST).execute({})

    assert status == "RollbackSuccessful"
    assert fleet.images_of_instances(aws_http) == {fleet.base_image}


def test_an_irreversible_refresh_is_cancelled_instead(aws_http, fleet, capsys):
    fleet.new_version(aws_http)
    _start(fleet, wait_for_completion=False).execute({})  # no desired configuration: AWS can't roll back

    status = resume(
        StopInstanceRefreshOperator(task_id="stop", auto_scaling_group_name=fleet.group, deferrable=True, **FAST)
    )

    assert status == "Cancelled"
    assert "AWS can't roll this refresh back" in capsys.readouterr().out


def test_a_strict_rollback_of_an_irreversible_refresh_fails(aws_http, fleet):
    _start(fleet, wait_for_completion=False).execute({})

    with pytest.raises(Exception, match="IrreversibleInstanceRefresh"):
        StopInstanceRefreshOperator(task_id="stop", auto_scaling_group_name=fleet.group, mode="rollback").execute({})


def test_stopping_when_nothing_runs_is_a_no_op(aws_http, fleet):
    assert StopInstanceRefreshOperator(task_id="stop", auto_scaling_group_name=fleet.group).execute({}) is None


@pytest.mark.parametrize("deferrable", [False, True])
def test_scale_to_zero_waits_until_no_instance_is_left(aws_http, fleet, deferrable):
    operator = SetDesiredCapacityOperator(
        task_id="scale", auto_scaling_group_name=fleet.group, desired_capacity=0, deferrable=deferrable, **FAST
    )

    assert resume(operator) == 0
    assert fleet.instance_ids(aws_http) == []


@pytest.mark.parametrize("deferrable", [False, True])
def test_the_capacity_sensor_waits_for_the_desired_capacity(aws_http, fleet, deferrable):
    aws_http("autoscaling").set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    sensor = AsgCapacitySensor(
        task_id="capacity", auto_scaling_group_name=fleet.group, poke_interval=0, timeout=30, deferrable=deferrable
    )

    resume(sensor)

    assert len(fleet.instance_ids(aws_http)) == 3


def test_the_capacity_sensor_is_false_until_the_count_matches(aws_http, fleet):
    sensor = AsgCapacitySensor(task_id="capacity", auto_scaling_group_name=fleet.group, capacity=3)

    assert sensor.poke({}) is False
    aws_http("autoscaling").set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=3)
    assert sensor.poke({}) is True


def test_the_capacity_trigger_reports_a_deleted_group(aws_http, fleet):
    operator = AsgCapacitySensor(
        task_id="capacity", auto_scaling_group_name=fleet.group, capacity=5, poke_interval=0, deferrable=True
    )
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    aws_http("autoscaling").delete_auto_scaling_group(AutoScalingGroupName=fleet.group, ForceDelete=True)

    event = run_trigger(deferred.value.trigger)

    assert event["status"] == "error"
    with pytest.raises(AwsResourceNotFound, match=f"Auto Scaling group '{fleet.group}' does not exist"):
        operator.execute_complete({}, event)


def test_capacity_not_reached_in_time_names_the_group(aws_http, fleet):
    operator = SetDesiredCapacityOperator(
        task_id="scale", auto_scaling_group_name=fleet.group, desired_capacity=2, waiter_delay=0, waiter_max_attempts=1
    )
    protected = fleet.instance_ids(aws_http)
    AutoScalingHook().set_instance_protection(fleet.group, protected, True)
    aws_http("autoscaling").set_desired_capacity(AutoScalingGroupName=fleet.group, DesiredCapacity=0)
    operator.desired_capacity = 0  # protected instances stay: the group can't settle at 0

    with pytest.raises(CapacityNotReached, match=f"{fleet.group} did not reach 0 instance"):
        operator.execute({})


def test_scale_in_protection_helpers(aws_http, fleet):
    hook = AutoScalingHook()
    ids = fleet.instance_ids(aws_http)
    hook.set_instance_protection(fleet.group, ids[:1], True)

    assert hook.protected_instance_ids(fleet.group) == ids[:1]
    assert hook.clear_scale_in_protection(fleet.group) == ids[:1]
    assert hook.protected_instance_ids(fleet.group) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: AutoScalingHook().describe_group("asg-staging-nope"),
        lambda: StartInstanceRefreshOperator(task_id="r", auto_scaling_group_name="asg-staging-nope").execute({}),
        lambda: InstanceRefreshSensor(task_id="s", auto_scaling_group_name="asg-staging-nope").poke({}),
        lambda: SetDesiredCapacityOperator(
            task_id="c", auto_scaling_group_name="asg-staging-nope", desired_capacity=1
        ).execute({}),
    ],
)
def test_a_missing_group_is_named(aws_http, call):
    with pytest.raises(AwsResourceNotFound, match="Auto Scaling group 'asg-staging-nope' does not exist"):
        call()
