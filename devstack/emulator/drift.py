"""CloudFormation drift detection, which moto 5.2.5 does not implement.

AWS (DetectStackDrift): a stack has drifted when its actual configuration differs from
what the template and its parameter values define, and "only resource properties
explicitly defined in the stack template are checked for drift". The emulator checks
what it can see: each ``AWS::AutoScaling::AutoScalingGroup``'s ``MinSize`` and ``MaxSize``
where the template sets them (a group resized by hand is ``MODIFIED``, with the
property's expected and actual values). Every other resource is
reported ``NOT_CHECKED``, AWS's status for a resource drift detection doesn't cover:
the emulator can't tell. A detection completes at once (``DETECTION_COMPLETE``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.responses import CloudFormationResponse
from moto.core.responses import ActionResult

from devstack.emulator.cloudformation import _resolved_parameters

CHECKED_PROPERTIES = {"AWS::AutoScaling::AutoScalingGroup": {"MinSize": "min_size", "MaxSize": "max_size"}}
#: detection id -> (stack id, {logical id: drift}), per process (the emulator's lifetime)
_DETECTIONS: dict[str, tuple[str, dict[str, dict[str, Any]]]] = {}


def _expected(value: Any, parameters: dict[str, str]) -> str | None:
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return parameters.get(value["Ref"])
    return None if isinstance(value, dict | list) else str(value)


def _resource_drifts(stack: Any) -> dict[str, dict[str, Any]]:
    parameters = _resolved_parameters(stack.template_dict, stack.bp_parameters)
    drifts = {}
    for logical_id, resource in (stack.template_dict.get("Resources") or {}).items():
        resource_type = resource["Type"]
        checked = CHECKED_PROPERTIES.get(resource_type)
        physical = stack.resource_map._parsed_resources.get(logical_id)
        drift: dict[str, Any] = {
            "StackId": stack.stack_id,
            "LogicalResourceId": logical_id,
            "PhysicalResourceId": getattr(physical, "physical_resource_id", None) or logical_id,
            "ResourceType": resource_type,
            "StackResourceDriftStatus": "NOT_CHECKED",
            "Timestamp": datetime.now(UTC),
            "PropertyDifferences": [],
        }
        if checked and physical is not None:
            for name, attribute in checked.items():
                expected = _expected((resource.get("Properties") or {}).get(name), parameters)
                actual = str(getattr(physical, attribute))
                if expected is not None and expected != actual:
                    drift["PropertyDifferences"].append(
                        {
                            "PropertyPath": f"/{name}",
                            "ExpectedValue": expected,
                            "ActualValue": actual,
                            "DifferenceType": "NOT_EQUAL",
                        }
                    )
            drift["StackResourceDriftStatus"] = "MODIFIED" if drift["PropertyDifferences"] else "IN_SYNC"
        drifts[logical_id] = drift
    return drifts


def detect_stack_drift(self: CloudFormationResponse) -> ActionResult:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    detection_id = str(uuid.uuid4())
    _DETECTIONS[detection_id] = (stack.stack_id, _resource_drifts(stack))
    return ActionResult({"StackDriftDetectionId": detection_id})


def _detection(detection_id: str) -> tuple[str, dict[str, dict[str, Any]]]:
    if detection_id not in _DETECTIONS:
        raise ValidationError(message=f"Drift detection {detection_id} does not exist")
    return _DETECTIONS[detection_id]


def describe_stack_drift_detection_status(self: CloudFormationResponse) -> ActionResult:
    detection_id = self._get_param("StackDriftDetectionId")
    stack_id, drifts = _detection(detection_id)
    drifted = sum(d["StackResourceDriftStatus"] in ("MODIFIED", "DELETED") for d in drifts.values())
    return ActionResult(
        {
            "StackId": stack_id,
            "StackDriftDetectionId": detection_id,
            "StackDriftStatus": "DRIFTED" if drifted else "IN_SYNC",
            "DetectionStatus": "DETECTION_COMPLETE",
            "DriftedStackResourceCount": drifted,
            "Timestamp": datetime.now(UTC),
        }
    )


def describe_stack_resource_drifts(self: CloudFormationResponse) -> ActionResult:
    stack = self.cloudformation_backend.get_stack(self._get_param("StackName"))
    wanted = set(self._get_param("StackResourceDriftStatusFilters", []))
    latest = [drifts for stack_id, drifts in _DETECTIONS.values() if stack_id == stack.stack_id]
    drifts = list(latest[-1].values()) if latest else []
    return ActionResult(
        {"StackResourceDrifts": [d for d in drifts if not wanted or d["StackResourceDriftStatus"] in wanted]}
    )


def install() -> None:
    CloudFormationResponse.detect_stack_drift = detect_stack_drift
    CloudFormationResponse.describe_stack_drift_detection_status = describe_stack_drift_detection_status
    CloudFormationResponse.describe_stack_resource_drifts = describe_stack_resource_drifts
