"""Termination lifecycle hooks for moto's Auto Scaling, which stores a hook (PutLifecycleHook)
but never acts on it, has no CompleteLifecycleAction, and has no CloudFormation
``AWS::AutoScaling::LifecycleHook``.

AWS (EC2 Auto Scaling user guide, "Amazon EC2 Auto Scaling lifecycle hooks"): a lifecycle
hook "pauses the instance as it is terminated (before it is fully terminated)"; the
instance waits in ``Terminating:Wait``. "Completing the lifecycle action with a result of
CONTINUE is helpful if you finish before the timeout period has expired. If you don't
complete the lifecycle action, the lifecycle hook goes to the status that you specified for
Default result after the timeout period ends." RecordLifecycleActionHeartbeat: "restart
the timeout period and keep the instance in a wait state". For a terminating instance
CONTINUE and ABANDON both end in its termination. And ("Retrieve the target lifecycle
state through instance metadata"): "When an instance prepares to transition to one of the
preceding steady states, Amazon EC2 Auto Scaling updates the value of the instance metadata
item ``autoscaling/target-lifecycle-state``" - ``Terminated`` once it is on its way out.

So, here:

* a group with an ``autoscaling:EC2_INSTANCE_TERMINATING`` hook puts every instance it
  takes out of service - a scale-in (SetDesiredCapacity, UpdateAutoScalingGroup, the
  scale-to-zero Lambda) or an instance refresh's replacement - in ``Terminating:Wait``:
  still running, no longer counted in the group's capacity, its target lifecycle state
  ``Terminated`` (:func:`target_lifecycle_state`, which the IMDS double serves);
* CompleteLifecycleAction (by ``InstanceId`` or ``LifecycleActionToken``) terminates it;
  an instance with no lifecycle action waiting is refused as AWS refuses it;
* its ``HeartbeatTimeout`` (3600 s unless set) passed, it is terminated all the same. Like
  the instance refresh's checkpoint delay, this rule is wall-clock time: it is applied
  whenever the group is read and at each tick of the emulated nodes (:func:`expire`);
* an instance refresh replaces its next instance only once the one before it has gone;
* ``AWS::AutoScaling::LifecycleHook`` is created with its stack
  (:class:`devstack.emulator.cfn_resources.LifecycleHookResource`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.models import AutoScalingBackend, FakeAutoScalingGroup, autoscaling_backends
from moto.autoscaling.responses import AutoScalingResponse
from moto.core.responses import ActionResult

TERMINATING = "autoscaling:EC2_INSTANCE_TERMINATING"
WAITING = "Terminating:Wait"
#: PutLifecycleHook's HeartbeatTimeout when none is given
DEFAULT_HEARTBEAT_TIMEOUT = 3600


@dataclass
class Waiting:
    """One instance held in ``Terminating:Wait`` by a hook."""

    instance_id: str
    group_name: str
    hook_name: str
    token: str
    timeout_seconds: int
    deadline: datetime

    def beat(self) -> None:
        self.deadline = datetime.now(UTC) + timedelta(seconds=self.timeout_seconds)


def _waiting(backend: AutoScalingBackend) -> dict[str, Waiting]:
    if not hasattr(backend, "bp_lifecycle_actions"):
        backend.bp_lifecycle_actions = {}
    return backend.bp_lifecycle_actions


def terminating_hook(backend: AutoScalingBackend, group_name: str) -> Any:
    """The group's termination hook, if it has one."""
    return next(
        (h for h in backend.describe_lifecycle_hooks(group_name) if h.lifecycle_transition == TERMINATING), None
    )


def take_out_of_service(backend: AutoScalingBackend, group: FakeAutoScalingGroup, instance_ids: list[str]) -> None:
    """What the group does to instances it no longer wants: held in ``Terminating:Wait``
    by a termination hook, else terminated at once."""
    hook = terminating_hook(backend, group.name)
    for state in [s for s in group.instance_states if s.instance.id in instance_ids]:
        if hook is None:
            terminate(backend, group, state.instance.id)
            continue
        state.lifecycle_state = WAITING
        timeout = int(hook.heartbeat_timeout or DEFAULT_HEARTBEAT_TIMEOUT)
        held = Waiting(state.instance.id, group.name, hook.name, str(uuid.uuid4()), timeout, datetime.now(UTC))
        held.beat()
        _waiting(backend)[state.instance.id] = held


def terminate(backend: AutoScalingBackend, group: FakeAutoScalingGroup, instance_id: str) -> None:
    """The instance leaves the group and EC2 terminates it; no lifecycle action waits on it any more."""
    group.instance_states = [s for s in group.instance_states if s.instance.id != instance_id]
    backend.ec2_backend.terminate_instances([instance_id])
    _waiting(backend).pop(instance_id, None)


def expire(backend: AutoScalingBackend) -> None:
    """Terminate every waiting instance whose heartbeat timeout has passed, and those of a
    group that was deleted (DeleteAutoScalingGroup's ForceDelete: "deletes the group along
    with all instances associated with the group, without waiting for all instances to be
    terminated")."""
    now = datetime.now(UTC)
    for held in list(_waiting(backend).values()):
        group = backend.autoscaling_groups.get(held.group_name)
        if group is None:
            backend.ec2_backend.terminate_instances([held.instance_id])
            _waiting(backend).pop(held.instance_id, None)
        elif held.deadline <= now:
            terminate(backend, group, held.instance_id)


def expire_everywhere() -> None:
    for regions in autoscaling_backends.values():
        for backend in regions.values():
            expire(backend)


def waiting_in(backend: AutoScalingBackend, group_name: str) -> list[str]:
    """The group's instances still in ``Terminating:Wait``."""
    expire(backend)
    return [h.instance_id for h in _waiting(backend).values() if h.group_name == group_name]


def target_lifecycle_state(instance_id: str) -> str | None:
    """What IMDS answers at ``autoscaling/target-lifecycle-state``; None outside a group."""
    for regions in autoscaling_backends.values():
        for backend in regions.values():
            for group in list(backend.autoscaling_groups.values()):
                for state in group.instance_states:
                    if state.instance.id == instance_id:
                        return "Terminated" if state.lifecycle_state.startswith("Terminating") else "InService"
    return None


# --- the API -----------------------------------------------------------------------


def complete_lifecycle_action(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    group_name = self._get_param("AutoScalingGroupName")
    hook_name = self._get_param("LifecycleHookName")
    instance_id, token = self._get_param("InstanceId"), self._get_param("LifecycleActionToken")
    result = self._get_param("LifecycleActionResult")
    if result not in ("CONTINUE", "ABANDON"):
        raise AutoscalingClientError("ValidationError", "LifecycleActionResult must be CONTINUE or ABANDON")
    held = _found(backend, group_name, hook_name, instance_id, token)
    terminate(backend, backend.autoscaling_groups[group_name], held.instance_id)
    return ActionResult({})


def record_lifecycle_action_heartbeat(self: AutoScalingResponse) -> ActionResult:
    backend = self.autoscaling_backend
    held = _found(
        backend,
        self._get_param("AutoScalingGroupName"),
        self._get_param("LifecycleHookName"),
        self._get_param("InstanceId"),
        self._get_param("LifecycleActionToken"),
    )
    held.beat()
    return ActionResult({})


def _found(
    backend: AutoScalingBackend, group_name: str, hook_name: str, instance_id: str | None, token: str | None
) -> Waiting:
    expire(backend)
    for held in _waiting(backend).values():
        if (held.group_name, held.hook_name) != (group_name, hook_name):
            continue
        if held.instance_id == instance_id or (token and held.token == token):
            return held
    what = f"instance ID {instance_id}" if instance_id else f"token {token}"
    raise AutoscalingClientError("ValidationError", f"No active Lifecycle Action found with {what}")


_set_desired_capacity = FakeAutoScalingGroup.set_desired_capacity
_describe_groups = AutoScalingBackend.describe_auto_scaling_groups
_delete_group = AutoScalingBackend.delete_auto_scaling_group


def _scale_in_through_hooks(self: FakeAutoScalingGroup, new_capacity: int | None) -> None:
    """Scale-in takes the instances moto would (the first unprotected ones) through the
    termination hook, then lets moto do the rest (nothing left to remove)."""
    target = self.min_size if new_capacity is None else int(new_capacity)
    excess = len(self.active_instances()) - target
    if excess > 0 and terminating_hook(self.autoscaling_backend, self.name) is not None:
        leaving = [s.instance.id for s in self.active_instances() if not s.protected_from_scale_in][:excess]
        take_out_of_service(self.autoscaling_backend, self, leaving)
    _set_desired_capacity(self, new_capacity)


def _describe_groups_after_timeouts(self: AutoScalingBackend, *args: Any, **kwargs: Any) -> Any:
    expire(self)
    return _describe_groups(self, *args, **kwargs)


def _delete_group_with_its_waiting_instances(self: AutoScalingBackend, group_name: str) -> None:
    _delete_group(self, group_name)
    expire(self)


def install() -> None:
    FakeAutoScalingGroup.set_desired_capacity = _scale_in_through_hooks
    AutoScalingBackend.describe_auto_scaling_groups = _describe_groups_after_timeouts
    AutoScalingBackend.delete_auto_scaling_group = _delete_group_with_its_waiting_instances
    for handler in (complete_lifecycle_action, record_lifecycle_action_heartbeat):
        setattr(AutoScalingResponse, handler.__name__, handler)
