"""Scale a GPU fleet to zero when its queue-empty alarm fires (seed 004, "Scale-to-Zero").

One function per stage, subscribed to that stage's topic. The alarm names its fleet in
its dimensions (FleetSlug, Stage: the ADR-0005 metric contract). The function acts only
on an Auto Scaling group tagged as that fleet *of this function's stage*: a message for
another stage, an unknown fleet, or an OK transition changes nothing (seed 003: the
shared topic used to collide across stages).

Before the desired capacity goes to 0, scale-in protection is cleared on the group's
instances: the queue has been empty for the alarm's whole window, so no job is running,
and a protection a crashed worker left behind would otherwise keep a GPU billing (seed
003, "stuck scale-in protection").
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import boto3

log = logging.getLogger()
log.setLevel(logging.INFO)

#: At most this many instance ids per SetInstanceProtection call (the API's limit).
PROTECTION_BATCH = 50


def handle(event: dict[str, Any], context: Any = None, autoscaling: Any = None) -> list[dict[str, Any]]:
    """Entry point for SNS. Returns what was done per record (also logged)."""
    autoscaling = autoscaling or boto3.client("autoscaling")
    stage = os.environ["FLEET_STAGE"]
    outcomes = []
    for record in event.get("Records", []):
        outcome = _handle_alarm(autoscaling, stage, _alarm(record))
        log.info(json.dumps(outcome))
        outcomes.append(outcome)
    return outcomes


def _alarm(record: dict[str, Any]) -> dict[str, Any]:
    message = record.get("Sns", {}).get("Message", "{}")
    try:
        alarm = json.loads(message)
    except json.JSONDecodeError:
        return {}
    return alarm if isinstance(alarm, dict) else {}


def _dimensions(alarm: dict[str, Any]) -> dict[str, str]:
    """CloudWatch writes alarm dimensions as ``{"name": ..., "value": ...}`` in SNS messages."""
    dimensions = (alarm.get("Trigger") or {}).get("Dimensions") or []
    return {(d.get("name") or d.get("Name")): (d.get("value") or d.get("Value")) for d in dimensions}


def _handle_alarm(autoscaling: Any, stage: str, alarm: dict[str, Any]) -> dict[str, Any]:
    name = alarm.get("AlarmName", "?")
    if alarm.get("NewStateValue") != "ALARM":
        return {"alarm": name, "action": "ignored", "reason": f"state is {alarm.get('NewStateValue')!r}, not ALARM"}
    dimensions = _dimensions(alarm)
    fleet, alarm_stage = dimensions.get("FleetSlug"), dimensions.get("Stage")
    if alarm_stage != stage or not fleet:
        return {"alarm": name, "action": "ignored", "reason": f"alarm is for stage {alarm_stage!r}, this is {stage!r}"}
    group = _fleet_group(autoscaling, stage, fleet)
    if group is None:
        return {"alarm": name, "action": "ignored", "reason": f"no Auto Scaling group tagged as fleet {stage}/{fleet}"}

    group_name = group["AutoScalingGroupName"]
    protected = [i["InstanceId"] for i in group.get("Instances", []) if i.get("ProtectedFromScaleIn")]
    for start in range(0, len(protected), PROTECTION_BATCH):
        autoscaling.set_instance_protection(
            AutoScalingGroupName=group_name,
            InstanceIds=protected[start : start + PROTECTION_BATCH],
            ProtectedFromScaleIn=False,
        )
    if group["DesiredCapacity"] == 0:
        return {
            "alarm": name,
            "action": "none",
            "group": group_name,
            "reason": "already at 0",
            "unprotected": protected,
        }
    autoscaling.set_desired_capacity(AutoScalingGroupName=group_name, DesiredCapacity=0, HonorCooldown=False)
    return {
        "alarm": name,
        "action": "scaled_to_zero",
        "group": group_name,
        "previous_desired": group["DesiredCapacity"],
        "unprotected": protected,
    }


def _fleet_group(autoscaling: Any, stage: str, fleet: str) -> dict[str, Any] | None:
    """The group carrying both this stage's and this fleet's tags (found by tag, not by name)."""
    paginator = autoscaling.get_paginator("describe_auto_scaling_groups")
    filters = [
        {"Name": f"tag:{os.environ['STAGE_TAG']}", "Values": [stage]},
        {"Name": f"tag:{os.environ['FLEET_TAG']}", "Values": [fleet]},
    ]
    groups = [g for page in paginator.paginate(Filters=filters) for g in page["AutoScalingGroups"]]
    return groups[0] if len(groups) == 1 else None
