"""Operators that change Auto Scaling groups: instance refreshes and capacity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import ClientError

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import CapacityNotReached, InstanceRefreshConflict, InstanceRefreshFailed, WaitEnded
from bp_aws.sensors.autoscaling import describe_refresh
from bp_aws.utils.waiting import connection_kwargs, defer_or_wait

#: Instance refresh preferences this operator passes through (AWS RefreshPreferences).
REFRESH_PREFERENCES = (
    "MinHealthyPercentage",
    "MaxHealthyPercentage",
    "InstanceWarmup",
    "CheckpointPercentages",
    "CheckpointDelay",
    "AutoRollback",
    "SkipMatching",
    "ScaleInProtectedInstances",
    "StandbyInstances",
)


class _RefreshWaitMixin:
    """Wait for an instance refresh, deferred or here; a bad end names its state."""

    deferrable: bool
    waiter_delay: int
    waiter_max_attempts: int

    def _wait_refresh(self, group: str, refresh_id: str, *, any_end: bool, method_name: str) -> None:
        from bp_aws.triggers.autoscaling import InstanceRefreshTrigger

        trigger = InstanceRefreshTrigger(
            auto_scaling_group_name=group,
            instance_refresh_id=refresh_id,
            wait_for_any_end=any_end,
            waiter_delay=self.waiter_delay,
            waiter_max_attempts=self.waiter_max_attempts,
            **connection_kwargs(self),
        )
        try:
            defer_or_wait(self, trigger, method_name)
        except WaitEnded as error:
            [refresh] = self.hook.describe_instance_refreshes(group, refresh_id)
            raise InstanceRefreshFailed(f"{describe_refresh(refresh)}: {error}") from None


class StartInstanceRefreshOperator(_RefreshWaitMixin, AwsOperator):
    """Start an instance refresh and, by default, wait until it is Successful.

    .. seealso:: AutoScaling.Client.start_instance_refresh

    :param auto_scaling_group_name: the group. (templated)
    :param preferences: RefreshPreferences, e.g. ``{"MinHealthyPercentage": 90,
        "InstanceWarmup": 300, "CheckpointPercentages": [50, 100], "AutoRollback": True}``. (templated)
    :param desired_configuration: DesiredConfiguration (launch template and version);
        required by AWS for a rollback. (templated)
    :param if_refresh_running: what to do when a refresh already runs: ``fail`` (default),
        ``wait`` for it to end, or ``cancel`` it, before starting this one.
    :param wait_for_completion: wait until the refresh ends. (default: True)
    :param deferrable: wait in the triggerer. (default: ``operators.default_deferrable``)
    :param waiter_delay: seconds between checks. (default: 30)
    :param waiter_max_attempts: checks before giving up. (default: 240)
    :return: the instance refresh id.
    """

    aws_hook_path = "bp_aws.hooks.autoscaling.AutoScalingHook"
    template_fields: Sequence[str] = aws_template_fields(
        "auto_scaling_group_name", "preferences", "desired_configuration"
    )
    template_fields_renderers = {"preferences": "json", "desired_configuration": "json"}

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        preferences: dict[str, Any] | None = None,
        desired_configuration: dict[str, Any] | None = None,
        if_refresh_running: Literal["fail", "wait", "cancel"] = "fail",
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 240,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if if_refresh_running not in ("fail", "wait", "cancel"):
            raise ValueError(f"if_refresh_running must be fail, wait or cancel, not {if_refresh_running!r}")
        self.auto_scaling_group_name = auto_scaling_group_name
        self.preferences = preferences or {}
        self.desired_configuration = desired_configuration
        self.if_refresh_running = if_refresh_running
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> str:
        unknown = sorted(set(self.preferences) - set(REFRESH_PREFERENCES))
        if unknown:
            raise ValueError(f"unknown instance refresh preference(s): {', '.join(unknown)}")
        group = self.auto_scaling_group_name
        running = self.hook.active_instance_refresh(group)
        if running:
            self.log.info("Already running: %s", describe_refresh(running))
            if self.if_refresh_running == "fail":
                raise InstanceRefreshConflict(
                    f"{describe_refresh(running)}. Not starting another: wait for it, cancel it, or run "
                    "with if_refresh_running='wait' or 'cancel'."
                )
            if self.if_refresh_running == "cancel":
                self.log.info("Cancelling it before starting a new one")
                self.hook.cancel_instance_refresh(group)
            self._wait_refresh(group, running["InstanceRefreshId"], any_end=True, method_name="start_after_previous")
        return self._start(context)

    def start_after_previous(self, context: Any, event: dict[str, Any] | None = None) -> str:
        validate_execute_complete_event(event)
        return self._start(context)

    def _start(self, context: Any) -> str:
        group = self.auto_scaling_group_name
        try:
            refresh_id = self.hook.start_instance_refresh(group, self.preferences, self.desired_configuration)
        except ClientError as error:
            if error.response["Error"]["Code"] == "InstanceRefreshInProgress":
                raise InstanceRefreshConflict(f"another instance refresh started on {group} meanwhile") from None
            raise
        self.log.info("Started instance refresh %s on %s with preferences %s", refresh_id, group, self.preferences)
        if self.wait_for_completion:
            self._wait_refresh(group, refresh_id, any_end=False, method_name="execute_complete")
            self.log.info("Instance refresh %s of %s is Successful", refresh_id, group)
        return refresh_id

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        event = validate_execute_complete_event(event)
        refresh_id = event["instance_refresh_id"]
        [refresh] = self.hook.describe_instance_refreshes(self.auto_scaling_group_name, refresh_id)
        self.log.info("%s", describe_refresh(refresh))
        if event["status"] != "success" or refresh["Status"] != "Successful":
            raise InstanceRefreshFailed(describe_refresh(refresh))
        return refresh_id


class StopInstanceRefreshOperator(_RefreshWaitMixin, AwsOperator):
    """Cancel or roll back the group's active instance refresh and wait until it ends.

    ``rollback`` restores the configuration the group had before the refresh (AWS
    supports it only with a desired configuration, a numbered launch template version
    and an ImageId that is not an SSM parameter); ``cancel`` stops it and keeps what was
    replaced; ``rollback_or_cancel`` rolls back where AWS allows it and cancels otherwise.
    A group with no active refresh is a no-op.

    .. seealso:: AutoScaling.Client.cancel_instance_refresh, rollback_instance_refresh

    :param auto_scaling_group_name: the group. (templated)
    :param mode: ``cancel``, ``rollback`` or ``rollback_or_cancel``. (default: rollback_or_cancel)
    :return: the refresh's final status, or None when nothing was running.
    """

    aws_hook_path = "bp_aws.hooks.autoscaling.AutoScalingHook"
    template_fields: Sequence[str] = aws_template_fields("auto_scaling_group_name")

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        mode: Literal["cancel", "rollback", "rollback_or_cancel"] = "rollback_or_cancel",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 15,
        waiter_max_attempts: int = 240,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mode not in ("cancel", "rollback", "rollback_or_cancel"):
            raise ValueError(f"mode must be cancel, rollback or rollback_or_cancel, not {mode!r}")
        self.auto_scaling_group_name = auto_scaling_group_name
        self.mode = mode
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> str | None:
        group = self.auto_scaling_group_name
        running = self.hook.active_instance_refresh(group)
        if running is None:
            self.log.info("No active instance refresh on %s: nothing to stop", group)
            return None
        refresh_id = self._stop(group)
        self._wait_refresh(group, refresh_id, any_end=True, method_name="execute_complete")
        return self._final(refresh_id)

    def _stop(self, group: str) -> str:
        if self.mode != "cancel":
            try:
                refresh_id = self.hook.rollback_instance_refresh(group)
                self.log.info("Rolling back instance refresh %s of %s", refresh_id, group)
                return refresh_id
            except ClientError as error:
                if self.mode == "rollback" or error.response["Error"]["Code"] != "IrreversibleInstanceRefresh":
                    raise
                self.log.warning("AWS can't roll this refresh back (%s); cancelling it instead", error)
        refresh_id = self.hook.cancel_instance_refresh(group)
        self.log.info("Cancelling instance refresh %s of %s", refresh_id, group)
        return refresh_id

    def _final(self, refresh_id: str) -> str:
        [refresh] = self.hook.describe_instance_refreshes(self.auto_scaling_group_name, refresh_id)
        self.log.info("%s", describe_refresh(refresh))
        return refresh["Status"]

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        event = validate_execute_complete_event(event)
        if event["status"] != "success":
            raise InstanceRefreshFailed(event.get("message", "the refresh did not end"))
        return self._final(event["instance_refresh_id"])


class SetDesiredCapacityOperator(AwsOperator):
    """Set a group's desired capacity and, optionally, wait until it is settled there.

    .. seealso:: AutoScaling.Client.set_desired_capacity

    :param auto_scaling_group_name: the group. (templated)
    :param desired_capacity: the new desired capacity. (templated)
    :param honor_cooldown: respect the group's cooldown. (default: False)
    :param wait_for_capacity: wait until exactly that many instances are InService and Healthy.
    """

    aws_hook_path = "bp_aws.hooks.autoscaling.AutoScalingHook"
    template_fields: Sequence[str] = aws_template_fields("auto_scaling_group_name", "desired_capacity")

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        desired_capacity: int,
        honor_cooldown: bool = False,
        wait_for_capacity: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 15,
        waiter_max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.auto_scaling_group_name = auto_scaling_group_name
        self.desired_capacity = desired_capacity
        self.honor_cooldown = honor_cooldown
        self.wait_for_capacity = wait_for_capacity
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> int:
        group, capacity = self.auto_scaling_group_name, int(self.desired_capacity)
        before = self.hook.describe_group(group)["DesiredCapacity"]
        self.hook.set_desired_capacity(group, capacity, self.honor_cooldown)
        self.log.info("Desired capacity of %s: %s -> %s", group, before, capacity)
        if not self.wait_for_capacity:
            return capacity
        from bp_aws.triggers.autoscaling import GroupCapacityTrigger

        trigger = GroupCapacityTrigger(
            auto_scaling_group_name=group,
            capacity=capacity,
            waiter_delay=self.waiter_delay,
            waiter_max_attempts=self.waiter_max_attempts,
            **connection_kwargs(self),
        )
        try:
            defer_or_wait(self, trigger, "execute_complete")
        except WaitEnded as error:
            raise CapacityNotReached(
                f"Auto Scaling group {group} did not reach {capacity} instance(s): {error}"
            ) from None
        return capacity

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int:
        event = validate_execute_complete_event(event)
        if event["status"] != "success":
            raise CapacityNotReached(event.get("message", "capacity not reached"))
        return int(self.desired_capacity)
