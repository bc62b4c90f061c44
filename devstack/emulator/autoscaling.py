"""Instance refreshes for moto's Auto Scaling, which has none (moto 5.2.5 answers
StartInstanceRefresh with a 404).

The behaviour follows the Amazon EC2 Auto Scaling API reference; the sentences each
rule follows are quoted in tests/devstack/test_emulator_autoscaling.py.

* StartInstanceRefresh creates a ``Pending`` refresh; "an active instance refresh
  already exists" -> ``InstanceRefreshInProgress``. A DesiredConfiguration is applied to
  the group, and the previous configuration kept for a rollback.
* Progress is driven by reads, not by the wall clock, so tests and the demo are
  deterministic: each DescribeInstanceRefreshes moves every active refresh one step
  (Pending -> InProgress, then one instance replaced per step, then Successful).
  Replacing an instance terminates it and launches one from the group's current
  launch template, so new instances really boot the new AMI.
* CheckpointPercentages pause the refresh at each checkpoint for CheckpointDelay
  seconds of wall-clock time ("The amount of time, in seconds, to wait after a checkpoint
  before continuing"; 3600 when not given): the one rule here that time, not reads,
  drives, because a rollout judges the fleet during that pause. A refresh paused at a
  checkpoint stays InProgress, as AWS's does.
* ScaleInProtectedInstances ``Refresh`` replaces protected instances, ``Ignore``
  skips them, ``Wait`` (AWS's default) leaves the refresh InProgress until protection
  is removed (AWS gives up after an hour; reads, not time, drive this emulator).
* SkipMatching leaves instances already on the desired image alone.
* Replaced instances go through the termination hook (:mod:`.lifecycle`), one at a time.
* CancelInstanceRefresh (of a refresh or of a rollback) -> ``Cancelling`` then
  ``Cancelled``; what was replaced stays replaced.
* RollbackInstanceRefresh -> ``RollbackInProgress`` then ``RollbackSuccessful``, with the
  replaced instances replaced again from the previous configuration; it is refused
  (``IrreversibleInstanceRefresh``) without a desired configuration, with a launch
  template on ``$Latest``/``$Default``, or one whose ImageId is an SSM parameter.
* A group created from a CloudFormation template keeps its ``CapacityRebalance``
  ("Indicates whether Capacity Rebalancing is enabled"; moto's template parser drops it).
* Instances launch from what the launch template resolves to: an ImageId of
  ``resolve:ssm:<parameter>`` is the parameter's value at launch ("Amazon EC2 resolves
  the parameter ... when the instance is launched"; moto launches the literal string),
  and a group with a mixed instances policy launches its first override's type.
* A group tagged ``emulator:fail-refresh-at`` = ``<percentage>`` fails its next instance
  refresh there, as :func:`plan_failure` does in-process: the demo and the end-to-end
  tests reach the moto server only over HTTP.
* :func:`plan_failure` lets a test make a refresh fail at a percentage; with
  AutoRollback the failure rolls back instead of ending ``Failed``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, autoscaling_backends
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

from devstack.emulator import lifecycle

ACTIVE = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")
#: RefreshPreferences.CheckpointDelay: "defaults to 3600 (1 hour)"
DEFAULT_CHECKPOINT_DELAY = 3600


class InstanceRefreshInProgress(AutoscalingClientError):
    code = "InstanceRefreshInProgress"


class ActiveInstanceRefreshNotFound(AutoscalingClientError):
    code = "ActiveInstanceRefreshNotFound"


class IrreversibleInstanceRefresh(AutoscalingClientError):
    code = "IrreversibleInstanceRefresh"


@dataclass
class InstanceRefresh:
    refresh_id: str
    group_name: str
    preferences: dict[str, Any]
    desired_configuration: dict[str, Any] | None
    previous_launch_template: dict[str, Any] | None
    to_update: list[str]
    status: str = "Pending"
    status_reason: str = "Waiting for the instance refresh to start."
    start_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    end_time: datetime | None = None
    updated: list[str] = field(default_factory=list)
    replaced_with: list[str] = field(default_factory=list)
    checkpoints_passed: set[int] = field(default_factory=set)
    paused_until: datetime | None = None
    fail_at_percentage: int | None = None
    failure_reason: str = ""
    rollback_failure_reason: str = ""

    @property
    def total(self) -> int:
        return len(self.to_update) + len(self.updated)

    @property
    def percentage(self) -> int:
        return 100 if self.total == 0 else int(100 * len(self.updated) / self.total)

    def finish(self, status: str, reason: str) -> None:
        self.status, self.status_reason, self.end_time = status, reason, datetime.now(UTC)

    def as_api(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "InstanceRefreshId": self.refresh_id,
            "AutoScalingGroupName": self.group_name,
            "Status": self.status,
            "StatusReason": self.status_reason,
            "StartTime": self.start_time,
            "PercentageComplete": self.percentage,
            "InstancesToUpdate": len(self.to_update),
            "Preferences": self.preferences,
            "Strategy": "Rolling",
        }
        if self.end_time:
            result["EndTime"] = self.end_time
        if self.desired_configuration:
            result["DesiredConfiguration"] = self.desired_configuration
        return result


def _refreshes(backend: AutoScalingBackend) -> dict[str, list[InstanceRefresh]]:
    """Per-group refreshes, newest first, kept on moto's own backend object."""
    if not hasattr(backend, "bp_instance_refreshes"):
        backend.bp_instance_refreshes = {}
    return backend.bp_instance_refreshes


def _active(backend: AutoScalingBackend, group_name: str) -> InstanceRefresh | None:
    return next((r for r in _refreshes(backend).get(group_name, []) if r.status in ACTIVE), None)


def _group(backend: AutoScalingBackend, group_name: str) -> Any:
    group = backend.autoscaling_groups.get(group_name)
    if group is None:
        raise AutoscalingClientError("ValidationError", f"AutoScalingGroup name not found - {group_name}")
    return group


def _launch_template_spec(group: Any) -> dict[str, Any] | None:
    template = group.ec2_launch_template
    if template is None:
        return None
    return {"LaunchTemplateId": template.id, "Version": group.launch_template_version}


def _apply_launch_template(backend: AutoScalingBackend, group: Any, spec: dict[str, Any]) -> None:
    if group.mixed_instances_policy:
        policy = group.mixed_instances_policy
        policy["LaunchTemplate"]["LaunchTemplateSpecification"] = spec
        group._set_launch_configuration(None, {}, policy)
    else:
        group._set_launch_configuration(None, spec, None)


def _irreversible_reason(refresh: InstanceRefresh, backend: AutoScalingBackend) -> str | None:
    if not refresh.desired_configuration:
        return "There is no desired configuration specified for the instance refresh."
    spec = refresh.previous_launch_template
    if spec is None or spec.get("Version") in (None, "$Latest", "$Default"):
        return "The Auto Scaling group uses the launch template's $Latest or $Default version."
    template = backend.ec2_backend.get_launch_template(spec["LaunchTemplateId"])
    image_id = template.get_version(spec["Version"]).image_id or ""
    if image_id.startswith("resolve:ssm:"):
        return "The launch template uses a Systems Manager parameter instead of an AMI ID for ImageId."
    return None


def _replace(backend: AutoScalingBackend, group: Any, instance_id: str) -> str:
    """Take one instance out of service (through its hook) and launch its replacement."""
    before = {s.instance.id for s in group.instance_states}
    lifecycle.take_out_of_service(backend, group, [instance_id])
    group.replace_autoscaling_group_instances(1, group.get_propagated_tags())
    return next(s.instance.id for s in group.instance_states if s.instance.id not in before)


def _step(backend: AutoScalingBackend, refresh: InstanceRefresh) -> None:
    """Move one active refresh forward by one step."""
    group = backend.autoscaling_groups.get(refresh.group_name)
    if group is None:
        refresh.finish("Failed", "The Auto Scaling group was deleted.")
        return
    if refresh.status == "Pending":
        refresh.status, refresh.status_reason = "InProgress", "Replacing instances."
        return
    if refresh.status == "Cancelling":
        refresh.finish("Cancelled", "The instance refresh was cancelled.")
        return
    if refresh.status == "RollbackInProgress":
        if refresh.rollback_failure_reason:
            refresh.finish("RollbackFailed", refresh.rollback_failure_reason)
            return
        if refresh.replaced_with:
            live = {s.instance.id for s in group.instance_states}
            for instance_id in [i for i in refresh.replaced_with if i in live]:
                _replace(backend, group, instance_id)
            refresh.replaced_with.clear()
            return
        refresh.finish("RollbackSuccessful", refresh.status_reason)
        return

    if refresh.fail_at_percentage is not None and refresh.percentage >= refresh.fail_at_percentage:
        _fail(backend, group, refresh)
        return
    checkpoints = refresh.preferences.get("CheckpointPercentages") or []
    reached = [c for c in checkpoints if c <= refresh.percentage and c not in refresh.checkpoints_passed and c < 100]
    if reached:
        refresh.checkpoints_passed.update(reached)
        delay = int(refresh.preferences.get("CheckpointDelay", DEFAULT_CHECKPOINT_DELAY))
        refresh.paused_until = datetime.now(UTC) + timedelta(seconds=delay)
        refresh.status_reason = f"Checkpoint {max(reached)}% reached: waiting the checkpoint delay ({delay} s)."
        return
    if refresh.paused_until is not None and datetime.now(UTC) < refresh.paused_until:
        return
    if waiting := lifecycle.waiting_in(backend, group.name):
        refresh.status_reason = f"Waiting for instance {waiting[0]} to terminate: a lifecycle hook holds it."
        return
    if not refresh.to_update:
        refresh.finish("Successful", "The instance refresh completed successfully.")
        return

    protected = {s.instance.id for s in group.instance_states if s.protected_from_scale_in}
    next_id = refresh.to_update[0]
    if next_id in protected and refresh.preferences.get("ScaleInProtectedInstances") == "Wait":
        refresh.status_reason = f"Waiting for instance {next_id}: it is protected from scale in."
        return
    refresh.to_update.pop(0)
    if next_id in {s.instance.id for s in group.instance_states}:
        refresh.replaced_with.append(_replace(backend, group, next_id))
    refresh.updated.append(next_id)
    refresh.status_reason = f"Replaced instance {next_id}."


def _fail(backend: AutoScalingBackend, group: Any, refresh: InstanceRefresh) -> None:
    reason = refresh.failure_reason or "Instance refresh failed: replacement instances did not pass health checks."
    if refresh.preferences.get("AutoRollback") and _irreversible_reason(refresh, backend) is None:
        _apply_launch_template(backend, group, refresh.previous_launch_template)
        refresh.status, refresh.status_reason = "RollbackInProgress", f"{reason} Rolling back."
        return
    refresh.finish("Failed", reason)


# --- the API -----------------------------------------------------------------------


def start_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    group = _group(backend, group_name)
    if _active(backend, group_name):
        raise InstanceRefreshInProgress(
            "An Instance Refresh is already in progress and blocks the execution "
            f"of this Instance Refresh for {group_name}."
        )
    preferences = self._get_param("Preferences") or {}
    preferences.setdefault("MinHealthyPercentage", 90)
    preferences.setdefault("SkipMatching", False)
    preferences.setdefault("AutoRollback", False)
    preferences.setdefault("ScaleInProtectedInstances", "Wait")
    preferences.setdefault("StandbyInstances", "Wait")
    desired = self._get_param("DesiredConfiguration") or None
    previous = _launch_template_spec(group)
    if desired and desired.get("LaunchTemplate"):
        _apply_launch_template(backend, group, desired["LaunchTemplate"])

    states = group.instance_states
    if preferences["ScaleInProtectedInstances"] == "Ignore":
        states = [s for s in states if not s.protected_from_scale_in]
    if preferences["StandbyInstances"] == "Ignore":
        states = [s for s in states if s.lifecycle_state != "Standby"]
    if preferences["SkipMatching"]:
        states = [s for s in states if s.instance.image_id != group.image_id]

    refresh = InstanceRefresh(
        refresh_id=str(uuid.uuid4()),
        group_name=group_name,
        preferences=preferences,
        desired_configuration=desired,
        previous_launch_template=previous,
        to_update=[s.instance.id for s in states],
    )
    if preferences["AutoRollback"] and (reason := _irreversible_reason(refresh, backend)):
        if desired and desired.get("LaunchTemplate") and previous:
            _apply_launch_template(backend, group, previous)
        raise AutoscalingClientError("ValidationError", f"AutoRollback is not supported: {reason}")
    planned = next((t["Value"] for t in group.tags if t["Key"] == FAIL_REFRESH_TAG), None)
    if planned is not None:  # once: the tag goes, so a rollback's own refresh can succeed
        group.tags = [t for t in group.tags if t["Key"] != FAIL_REFRESH_TAG]
        refresh.fail_at_percentage = int(planned)
        refresh.failure_reason = "Instances failed to reach InService (planned by the emulator:fail-refresh-at tag)."
    _refreshes(backend).setdefault(group_name, []).insert(0, refresh)
    return ActionResult({"InstanceRefreshId": refresh.refresh_id})


def describe_instance_refreshes(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    _group(backend, group_name)
    wanted = set(self._get_param("InstanceRefreshIds") or [])
    refreshes = _refreshes(backend).get(group_name, [])
    for refresh in refreshes:
        if refresh.status in ACTIVE and (not wanted or refresh.refresh_id in wanted):
            _step(backend, refresh)
    selected = [r.as_api() for r in refreshes if not wanted or r.refresh_id in wanted]
    return ActionResult({"InstanceRefreshes": selected[: int(self._get_param("MaxRecords") or 50)]})


def cancel_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    _group(backend, group_name)
    refresh = _active(backend, group_name)
    if refresh is None or refresh.status == "Cancelling":
        raise ActiveInstanceRefreshNotFound(f"No in progress or pending Instance Refresh found for {group_name}.")
    refresh.status, refresh.status_reason = "Cancelling", "Cancelling the instance refresh."
    return ActionResult({"InstanceRefreshId": refresh.refresh_id})


def rollback_instance_refresh(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    group = _group(backend, group_name)
    refresh = _active(backend, group_name)
    if refresh is None or refresh.status in ("Cancelling", "RollbackInProgress"):
        raise ActiveInstanceRefreshNotFound(f"No in progress or pending Instance Refresh found for {group_name}.")
    if reason := _irreversible_reason(refresh, backend):
        raise IrreversibleInstanceRefresh(f"The instance refresh can't be rolled back. {reason}")
    _apply_launch_template(backend, group, refresh.previous_launch_template)
    refresh.status, refresh.status_reason = "RollbackInProgress", "Rolling back the instance refresh."
    return ActionResult({"InstanceRefreshId": refresh.refresh_id})


def plan_failure(
    group_name: str,
    *,
    at_percentage: int = 0,
    reason: str = "",
    rollback_failure_reason: str = "",
    account_id: str = "123456789012",
    region: str = "us-east-1",
) -> InstanceRefresh:
    """Make the group's active refresh fail once it reaches ``at_percentage`` (tests only);
    with ``rollback_failure_reason`` its rollback fails too."""
    refresh = _active(autoscaling_backends[account_id][region], group_name)
    if refresh is None:
        raise LookupError(f"no active instance refresh on {group_name}")
    refresh.fail_at_percentage, refresh.failure_reason = at_percentage, reason
    refresh.rollback_failure_reason = rollback_failure_reason
    return refresh


_create_group_from_template = FakeAutoScalingGroup.create_from_cloudformation_json.__func__
_template_image_id = FakeAutoScalingGroup.image_id.fget
_template_instance_type = FakeAutoScalingGroup.instance_type.fget
SSM_IMAGE_PREFIX = "resolve:ssm:"
FAIL_REFRESH_TAG = "emulator:fail-refresh-at"


def _launched_image_id(group: FakeAutoScalingGroup) -> str:
    image_id = _template_image_id(group)
    if image_id and image_id.startswith(SSM_IMAGE_PREFIX):
        from moto.ssm.models import ssm_backends

        parameter = ssm_backends[group.account_id][group.region].get_parameter(image_id[len(SSM_IMAGE_PREFIX) :])
        if parameter is not None:
            return parameter.value
    return image_id


def _launched_instance_type(group: FakeAutoScalingGroup) -> str:
    instance_type = _template_instance_type(group)
    overrides = ((group.mixed_instances_policy or {}).get("LaunchTemplate") or {}).get("Overrides") or []
    if not instance_type and overrides:
        return overrides[0].get("InstanceType") or instance_type
    return instance_type


def _create_group_keeping_rebalance(
    cls: type, resource_name: str, cloudformation_json: dict[str, Any], *args: Any, **kwargs: Any
) -> FakeAutoScalingGroup:
    group = _create_group_from_template(cls, resource_name, cloudformation_json, *args, **kwargs)
    group.capacity_rebalance = str(cloudformation_json["Properties"].get("CapacityRebalance", False)).lower() == "true"
    return group


def install() -> None:
    FakeAutoScalingGroup.create_from_cloudformation_json = classmethod(_create_group_keeping_rebalance)
    FakeAutoScalingGroup.image_id = property(_launched_image_id)
    FakeAutoScalingGroup.instance_type = property(_launched_instance_type)
    for handler in (
        start_instance_refresh,
        describe_instance_refreshes,
        cancel_instance_refresh,
        rollback_instance_refresh,
    ):
        setattr(AutoScalingResponse, handler.__name__, handler)
