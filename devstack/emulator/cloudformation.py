"""CloudFormation change sets and resources that moto 5.2.5 gets wrong or skips.

* ``AWS::AutoScaling::ScalingPolicy`` and ``AWS::CloudWatch::Alarm`` are created,
  updated and deleted with their stacks (:mod:`devstack.emulator.cfn_resources`).
* An UPDATE change set is the diff of the template and the resolved parameters
  against the stack: Add / Modify / Remove per logical id, with Replacement=True when
  a resource's name property changes. A change set with no change ends ``FAILED`` with
  AWS's reason "The submitted information didn't contain changes. Submit different
  information to create a change set." (moto lists no change for a real update and
  does not fail an unchanged one once parameters are involved).
* Executing a change set refreshes the stack's parameters and Outputs (moto leaves
  Outputs empty).
* A stack whose resource can't be deleted ends ``DELETE_FAILED`` and stays, with the
  resource's ``DELETE_FAILED`` event; a bucket that isn't empty can't be deleted, as in
  S3 ("The bucket you tried to delete is not empty"), where moto silently keeps the
  bucket and reports the stack deleted.
* A resource that fails while a change set executes rolls the stack back, as AWS
  does: the resource's ``CREATE_FAILED``/``UPDATE_FAILED`` event with the error as its
  reason, then ``ROLLBACK_COMPLETE`` for a new stack or ``UPDATE_ROLLBACK_COMPLETE``
  (the previous template and parameters restored) for an update.
"""

from __future__ import annotations

import json
from typing import Any

from moto.cloudformation import parsing
from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import Change, CloudFormationBackend, Event, Stack
from moto.s3.models import FakeBucket, s3_backends
from moto.utilities.utils import get_partition

from devstack.emulator import cfn_resources  # noqa: F401 - registers the resource models with moto

NO_CHANGES = "The submitted information didn't contain changes. Submit different information to create a change set."

#: Properties whose change makes CloudFormation replace the resource.
_NAME_PROPERTIES = {
    "AWS::AutoScaling::AutoScalingGroup": "AutoScalingGroupName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::EC2::LaunchTemplate": "LaunchTemplateName",
    "AWS::SNS::Topic": "TopicName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
}


def _resolved_parameters(template: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    declared = template.get("Parameters") or {}
    resolved = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    resolved.update({k: str(v) for k, v in given.items() if k in declared})
    return resolved


def _references(resource: dict[str, Any], names: set[str]) -> bool:
    text = json.dumps(resource, default=str)
    return any(f'"Ref": "{name}"' in text or f"!Ref {name}" in text for name in names)


def diff(
    old_template: dict[str, Any],
    old_parameters: dict[str, str],
    new_template: dict[str, Any],
    new_parameters: dict[str, str],
) -> list[Change]:
    """Resource changes between two (template, resolved parameters) pairs."""
    old_resources = old_template.get("Resources") or {}
    new_resources = new_template.get("Resources") or {}
    changed_parameters = {
        name
        for name in set(old_parameters) | set(new_parameters)
        if old_parameters.get(name) != new_parameters.get(name)
    }
    changes = []
    for logical_id, resource in new_resources.items():
        previous = old_resources.get(logical_id)
        if previous is None:
            changes.append(_change("Add", logical_id, resource["Type"]))
        elif previous != resource or _references(resource, changed_parameters):
            name_property = _NAME_PROPERTIES.get(resource["Type"])
            old_props, new_props = previous.get("Properties", {}), resource.get("Properties", {})
            replaced = previous["Type"] != resource["Type"] or (
                name_property is not None and old_props.get(name_property) != new_props.get(name_property)
            )
            changes.append(_change("Modify", logical_id, resource["Type"], "True" if replaced else "False"))
    for logical_id, resource in old_resources.items():
        if logical_id not in new_resources:
            changes.append(_change("Remove", logical_id, resource["Type"]))
    return changes


def _change(action: str, logical_id: str, resource_type: str, replacement: str | None = None) -> Change:
    change = Change(action=action, logical_resource_id=logical_id, resource_type=resource_type)
    if replacement is not None:
        change.replacement = replacement
    return change


_original_create_change_set = CloudFormationBackend.create_change_set
_original_delete_stack = CloudFormationBackend.delete_stack
_original_execute_change_set = CloudFormationBackend.execute_change_set


def create_change_set(self: CloudFormationBackend, stack_name: str, change_set_name: str, *args: Any, **kwargs: Any):
    change_set_id, stack_id = _original_create_change_set(self, stack_name, change_set_name, *args, **kwargs)
    change_set = self.change_sets[change_set_id]
    if change_set.change_set_type != "UPDATE":
        return change_set_id, stack_id
    stack = self.stacks[stack_id]
    stack._parse_template()
    old_parameters = _resolved_parameters(stack.template_dict, stack.bp_parameters)
    new_parameters = _resolved_parameters(change_set.template_dict, change_set.parameters)
    change_set.changes = diff(stack.template_dict, old_parameters, change_set.template_dict, new_parameters)
    if change_set.changes or old_parameters != new_parameters:
        change_set.status, change_set.execution_status, change_set.status_reason = (
            "CREATE_COMPLETE",
            "AVAILABLE",
            None,
        )
    else:
        change_set.status, change_set.execution_status, change_set.status_reason = (
            "FAILED",
            "UNAVAILABLE",
            NO_CHANGES,
        )
    return change_set_id, stack_id


def execute_change_set(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
    change_set = self.describe_change_set(change_set_name)
    stack = self.stacks[change_set.stack_id]
    if change_set.execution_status != "AVAILABLE":
        raise ValidationError(
            stack_name, message=f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current status"
        )
    previous = (stack.template, dict(stack.bp_parameters))
    try:
        _original_execute_change_set(self, change_set_name, stack_name)
    except Exception as error:  # a resource failed: roll back like CloudFormation
        _roll_back(stack, change_set, previous, error)
        return
    stack.bp_parameters = dict(change_set.parameters)
    stack._parse_template()
    stack.output_map = stack._create_output_map()


class ResourceFailed(Exception):
    """A resource's create or update raised; carries which resource it was."""

    def __init__(self, logical_id: str, resource_type: str, error: Exception) -> None:
        super().__init__(str(error))
        self.logical_id, self.resource_type = logical_id, resource_type


def _naming_failures(parse: Any) -> Any:
    def wrapper(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return parse(logical_id, resource_json, *args, **kwargs)
        except ResourceFailed:
            raise
        except Exception as error:
            raise ResourceFailed(logical_id, resource_json.get("Type", "?"), error) from error

    wrapper.bp_wrapped = True
    return wrapper


def _roll_back(stack: Any, change_set: Any, previous: tuple[str, dict[str, str]], error: Exception) -> None:
    if isinstance(error, ResourceFailed):
        logical_id, resource_type = error.logical_id, error.resource_type
    else:
        logical_id, resource_type = stack.name, "AWS::CloudFormation::Stack"
    creating = change_set.change_set_type == "CREATE"
    stack.events.append(
        Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id,
            physical_resource_id=None,
            resource_type=resource_type,
            resource_status="CREATE_FAILED" if creating else "UPDATE_FAILED",
            resource_status_reason=str(error),
            resource_properties=None,
        )
    )
    change_set.execution_status = "EXECUTE_FAILED"
    verb = "create" if creating else "update"
    stack._add_stack_event(
        "ROLLBACK_IN_PROGRESS" if creating else "UPDATE_ROLLBACK_IN_PROGRESS",
        resource_status_reason=(
            f"The following resource(s) failed to {verb}: [{logical_id}]. Rollback requested by user."
        ),
    )
    if creating:
        stack.resource_map.delete()
        stack.status = "ROLLBACK_COMPLETE"
    else:
        template, parameters = previous
        stack.template = template
        stack._parse_template()
        stack.resource_map.update(stack.template_dict, _resolved_parameters(stack.template_dict, parameters))
        stack.output_map = stack._create_output_map()
        stack.status = "UPDATE_ROLLBACK_COMPLETE"
    stack._add_stack_event(stack.status)


def delete_stack(self: CloudFormationBackend, name_or_stack_id: str) -> None:
    stack = next(
        (s for s in self.stacks.values() if name_or_stack_id in (s.name, s.stack_id)),
        None,
    )
    try:
        _original_delete_stack(self, name_or_stack_id)
    except Exception as error:
        if stack is None:
            raise
        self.stacks[stack.stack_id] = stack
        self.deleted_stacks.pop(stack.stack_id, None)
        remaining = [
            logical_id
            for logical_id in stack.resource_map._resource_json_map
            if not isinstance(stack.resource_map._parsed_resources.get(logical_id), str | type(None))
        ]
        for logical_id in remaining:
            stack.events.append(
                Event(
                    stack_id=stack.stack_id,
                    stack_name=stack.name,
                    logical_resource_id=logical_id,
                    physical_resource_id=None,
                    resource_type=stack.resource_map._resource_json_map[logical_id]["Type"],
                    resource_status="DELETE_FAILED",
                    resource_status_reason=str(error),
                    resource_properties=None,
                )
            )
        stack.status = "DELETE_FAILED"
        stack._add_stack_event(
            "DELETE_FAILED",
            resource_status_reason=f"The following resource(s) failed to delete: [{', '.join(remaining)}].",
        )


_original_delete_bucket = FakeBucket.delete_from_cloudformation_json.__func__


def _delete_bucket(cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> None:
    bucket = s3_backends[account_id][get_partition(region_name)].buckets.get(resource_name)
    if bucket is not None and bucket.keys:
        raise ValueError("The bucket you tried to delete is not empty")
    _original_delete_bucket(cls, resource_name, cloudformation_json, account_id, region_name)


def install() -> None:
    # The model classes above registered themselves by subclassing; moto caches the map.
    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()
    for name in ("parse_and_create_resource", "parse_and_update_resource"):
        if not getattr(getattr(parsing, name), "bp_wrapped", False):
            setattr(parsing, name, _naming_failures(getattr(parsing, name)))
    CloudFormationBackend.create_change_set = create_change_set
    CloudFormationBackend.execute_change_set = execute_change_set
    CloudFormationBackend.delete_stack = delete_stack
    FakeBucket.delete_from_cloudformation_json = classmethod(_delete_bucket)
    if not hasattr(Stack, "bp_parameters"):
        Stack.bp_parameters = property(
            lambda stack: stack.__dict__.setdefault("_bp_parameters", dict(stack.parameters or {})),
            lambda stack, value: stack.__dict__.__setitem__("_bp_parameters", value),
        )
