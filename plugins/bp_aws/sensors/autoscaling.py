"""Sensors on Auto Scaling: an instance refresh's outcome, and a group's capacity."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import jmespath
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import conf

from bp_aws.base import AwsSensor, aws_template_fields
from bp_aws.exceptions import CapacityNotReached, InstanceRefreshFailed
from bp_aws.utils.waiting import connection_kwargs, optional_int, poll_attempts


def describe_refresh(refresh: dict[str, Any]) -> str:
    """One line for the task log: status, progress and AWS's reason."""
    return (
        f"instance refresh {refresh['InstanceRefreshId']} of {refresh['AutoScalingGroupName']}: "
        f"{refresh['Status']}, {refresh.get('PercentageComplete', 0)}% complete, "
        f"{refresh.get('InstancesToUpdate', '?')} instance(s) to update"
        + (f" ({refresh['StatusReason']})" if refresh.get("StatusReason") else "")
    )


class InstanceRefreshSensor(AwsSensor):
    """Wait for an instance refresh to end: succeed on ``Successful``, fail with AWS's
    StatusReason on ``Failed``, ``Cancelled``, ``RollbackSuccessful`` or ``RollbackFailed``.

    Logs PercentageComplete and InstancesToUpdate each time they change.

    :param auto_scaling_group_name: the group. (templated)
    :param instance_refresh_id: the refresh to follow; the group's newest when None. (templated)
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param poke_interval: seconds between checks. (default: 30)
    :param timeout: seconds before the wait fails. (default: 3 hours)
    """

    SUCCESS_STATES = ("Successful",)
    FAILURE_STATES = ("Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed")

    aws_hook_path = "bp_aws.hooks.autoscaling.AutoScalingHook"
    template_fields: Sequence[str] = aws_template_fields("auto_scaling_group_name", "instance_refresh_id")

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        instance_refresh_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30,
        timeout: float = 3 * 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.auto_scaling_group_name = auto_scaling_group_name
        self.instance_refresh_id = instance_refresh_id
        self.deferrable = deferrable
        self._last_progress: tuple | None = None

    def _refresh(self) -> dict[str, Any]:
        refreshes = self.hook.describe_instance_refreshes(self.auto_scaling_group_name, self.instance_refresh_id)
        if not refreshes:
            what = self.instance_refresh_id or "any instance refresh"
            raise InstanceRefreshFailed(f"Auto Scaling group {self.auto_scaling_group_name!r} has no {what}")
        return refreshes[0]

    def _log_progress(self, refresh: dict[str, Any]) -> None:
        progress = (refresh["Status"], refresh.get("PercentageComplete"), refresh.get("InstancesToUpdate"))
        if progress != self._last_progress:
            self.log.info("%s", describe_refresh(refresh))
            self._last_progress = progress

    def _verdict(self, refresh: dict[str, Any]) -> bool:
        self._log_progress(refresh)
        if refresh["Status"] in self.FAILURE_STATES:
            raise InstanceRefreshFailed(describe_refresh(refresh))
        return refresh["Status"] in self.SUCCESS_STATES

    def poke(self, context: Any) -> bool:
        return self._verdict(self._refresh())

    def execute(self, context: Any) -> str:
        refresh = self._refresh()
        self.instance_refresh_id = refresh["InstanceRefreshId"]
        if self._verdict(refresh):
            return self.instance_refresh_id
        if not self.deferrable:
            super().execute(context)
            return self.instance_refresh_id
        from bp_aws.triggers.autoscaling import InstanceRefreshTrigger

        self.defer(
            trigger=InstanceRefreshTrigger(
                auto_scaling_group_name=self.auto_scaling_group_name,
                instance_refresh_id=self.instance_refresh_id,
                waiter_delay=int(self.poke_interval),
                waiter_max_attempts=poll_attempts(self.timeout, self.poke_interval),
                **connection_kwargs(self),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return self.instance_refresh_id  # not reached: defer() raises

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        event = validate_execute_complete_event(event)
        self.instance_refresh_id = event["instance_refresh_id"]
        refresh = self._refresh()  # the final state, with AWS's StatusReason, for the log
        if not self._verdict(refresh):
            raise InstanceRefreshFailed(f"{describe_refresh(refresh)}: {event.get('message', 'wait ended early')}")
        return self.instance_refresh_id


class AsgCapacitySensor(AwsSensor):
    """Wait until a group has exactly ``capacity`` instances (its desired capacity when
    None), all InService and Healthy: a scale-up that finished, or a scale-to-zero that
    left nothing running.

    :param auto_scaling_group_name: the group. (templated)
    :param capacity: the instance count to wait for; None means DesiredCapacity. (templated)
    """

    aws_hook_path = "bp_aws.hooks.autoscaling.AutoScalingHook"
    template_fields: Sequence[str] = aws_template_fields("auto_scaling_group_name", "capacity")

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        capacity: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 15,
        timeout: float = 1800,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.auto_scaling_group_name = auto_scaling_group_name
        self.capacity = capacity
        self.deferrable = deferrable

    def _target(self) -> int | None:
        return optional_int(self.capacity)

    def poke(self, context: Any) -> bool:
        from bp_aws.hooks.autoscaling import capacity_expression

        group = self.hook.describe_group(self.auto_scaling_group_name)
        states = [f"{i['InstanceId']}={i['LifecycleState']}/{i['HealthStatus']}" for i in group["Instances"]]
        self.log.info(
            "%s: desired %s, waiting for %s; instances: %s",
            self.auto_scaling_group_name,
            group["DesiredCapacity"],
            "desired" if self._target() is None else self._target(),
            ", ".join(states) or "none",
        )
        return bool(jmespath.search(capacity_expression(self._target()), {"AutoScalingGroups": [group]}))

    def execute(self, context: Any) -> None:
        if not self.deferrable or self.poke(context):
            super().execute(context)
            return
        from bp_aws.triggers.autoscaling import GroupCapacityTrigger

        self.defer(
            trigger=GroupCapacityTrigger(
                auto_scaling_group_name=self.auto_scaling_group_name,
                capacity=self._target(),
                waiter_delay=int(self.poke_interval),
                waiter_max_attempts=poll_attempts(self.timeout, self.poke_interval),
                **connection_kwargs(self),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        event = validate_execute_complete_event(event)
        if event["status"] != "success":
            self.hook.describe_group(self.auto_scaling_group_name)  # a deleted group says so
            raise CapacityNotReached(event["message"])
        self.log.info("Auto Scaling group %s reached its target capacity", self.auto_scaling_group_name)
