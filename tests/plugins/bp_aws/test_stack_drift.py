"""Stack drift detection on the emulator (moto has none: devstack/emulator/drift.py):
an ASG resized by hand is MODIFIED with the property's values, the sensor returns each
stack's verdict, and its trigger waits for a detection in the triggerer."""

from __future__ import annotations

from bp_aws.hooks.cloudformation import ChangeSetHook
from bp_aws.sensors.cloudformation import StackDriftDetectionSensor
from bp_aws.triggers.cloudformation import DriftDetectionTrigger
from tests.plugins.bp_aws.test_cloudformation import STACK, _deploy
from tests.plugins.conftest import resume, run_trigger


def test_a_group_resized_by_hand_is_drift_and_an_untouched_stack_is_in_sync(aws_http, baseline):
    _deploy(baseline, parameters={"MaxSize": 3}).execute({})
    hook = ChangeSetHook(aws_conn_id="aws_default")
    in_sync = hook.start_drift_detection(STACK)
    aws_http("autoscaling").update_auto_scaling_group(AutoScalingGroupName="asg-staging-mini", MaxSize=7)
    drifted = hook.start_drift_detection(STACK)

    statuses = resume(
        StackDriftDetectionSensor(task_id="drift", detections={"before": in_sync, "after": drifted}, deferrable=True)
    )

    assert statuses == {"before": "IN_SYNC", "after": "DRIFTED"}
    (group,) = hook.drifted_resources(STACK)
    assert group["ResourceType"] == "AWS::AutoScaling::AutoScalingGroup"
    assert group["StackResourceDriftStatus"] == "MODIFIED"
    assert group["PropertyDifferences"] == [
        {"PropertyPath": "/MaxSize", "ExpectedValue": "3", "ActualValue": "7", "DifferenceType": "NOT_EQUAL"}
    ]


def test_the_trigger_ends_when_the_detection_has(aws_http, baseline):
    _deploy(baseline).execute({})
    detection = ChangeSetHook(aws_conn_id="aws_default").start_drift_detection(STACK)

    event = run_trigger(DriftDetectionTrigger(detection_id=detection, waiter_delay=1, first_poll_delay=0))

    assert event == {"status": "success", "detection_id": detection}
