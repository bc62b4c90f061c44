"""Amazon EC2 Auto Scaling hook: groups, capacity, instance refreshes, protection."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

from bp_aws.exceptions import AwsResourceNotFound

#: Instance refresh states AWS reports while a refresh still runs.
ACTIVE_REFRESH_STATES = ("Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking")


def capacity_expression(capacity: int | None) -> str:
    """JMESPath over DescribeAutoScalingGroups that is true when the group is settled at
    ``capacity`` (its DesiredCapacity when None): exactly that many instances, all
    InService and Healthy, none launching or terminating.

    The single definition used by the sensor's poke and by the waiter the trigger runs.
    """
    group = "AutoScalingGroups[0]"
    target = f"{group}.DesiredCapacity" if capacity is None else f"`{int(capacity)}`"
    ready = f"length({group}.Instances[?LifecycleState=='InService' && HealthStatus=='Healthy'])"
    return f"{ready} == {target} && length({group}.Instances) == {target}"


class AutoScalingHook(AwsBaseHook):
    """Interact with Amazon EC2 Auto Scaling through a boto3 ``autoscaling`` client.

    Custom waiters for instance refreshes and capacity live in ``bp_aws/waiters/``
    (botocore has none for Auto Scaling).

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "autoscaling"
        super().__init__(*args, **kwargs)

    @cached_property
    def waiter_path(self) -> Path:
        return Path(__file__).parents[1] / "waiters" / "autoscaling.json"

    @staticmethod
    def capacity_waiter_config(capacity: int | None) -> dict[str, Any]:
        """``config_overrides`` for the ``group_at_capacity`` waiter."""
        return {
            "acceptors": [
                {"matcher": "path", "argument": "length(AutoScalingGroups)", "expected": 0, "state": "failure"},
                {"matcher": "path", "argument": capacity_expression(capacity), "expected": True, "state": "success"},
            ]
        }

    @staticmethod
    def checkpoint_waiter_config(percentage: int) -> dict[str, Any]:
        """``config_overrides`` for the ``instance_refresh_checkpoint`` waiter: success once
        ``percentage`` of the group is new (at 100, once the refresh is Successful), failure
        when the refresh ends any other way."""
        status = "InstanceRefreshes[0].Status"
        acceptors: list[dict[str, Any]] = [
            {"matcher": "path", "argument": "length(InstanceRefreshes)", "expected": 0, "state": "failure"},
            {"matcher": "path", "argument": status, "expected": "Successful", "state": "success"},
            *(
                {"matcher": "path", "argument": status, "expected": ended, "state": "failure"}
                for ended in ("Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed")
            ),
        ]
        if percentage < 100:
            reached = f"InstanceRefreshes[0].PercentageComplete >= `{int(percentage)}`"
            acceptors.append({"matcher": "path", "argument": reached, "expected": True, "state": "success"})
        return {"acceptors": acceptors}

    def describe_group(self, group_name: str) -> dict[str, Any]:
        group = self.describe_group_or_none(group_name)
        if group is None:
            raise AwsResourceNotFound("Auto Scaling group", group_name)
        return group

    def describe_instance_refreshes(self, group_name: str, refresh_id: str | None = None) -> list[dict[str, Any]]:
        """Newest first. .. seealso:: AutoScaling.Client.describe_instance_refreshes"""
        self.describe_group(group_name)  # a missing group is a clear error, not an empty list
        kwargs: dict[str, Any] = {"AutoScalingGroupName": group_name}
        if refresh_id:
            kwargs["InstanceRefreshIds"] = [refresh_id]
        return self.conn.describe_instance_refreshes(**kwargs)["InstanceRefreshes"]

    def active_instance_refresh(self, group_name: str) -> dict[str, Any] | None:
        return next(
            (r for r in self.describe_instance_refreshes(group_name) if r["Status"] in ACTIVE_REFRESH_STATES), None
        )

    def start_instance_refresh(
        self,
        group_name: str,
        preferences: dict[str, Any],
        desired_configuration: dict[str, Any] | None = None,
    ) -> str:
        """.. seealso:: AutoScaling.Client.start_instance_refresh"""
        kwargs: dict[str, Any] = {"AutoScalingGroupName": group_name, "Preferences": preferences}
        if desired_configuration:
            kwargs["DesiredConfiguration"] = desired_configuration
        return self.conn.start_instance_refresh(**kwargs)["InstanceRefreshId"]

    def cancel_instance_refresh(self, group_name: str) -> str:
        """.. seealso:: AutoScaling.Client.cancel_instance_refresh"""
        return self.conn.cancel_instance_refresh(AutoScalingGroupName=group_name)["InstanceRefreshId"]

    def rollback_instance_refresh(self, group_name: str) -> str:
        """.. seealso:: AutoScaling.Client.rollback_instance_refresh"""
        return self.conn.rollback_instance_refresh(AutoScalingGroupName=group_name)["InstanceRefreshId"]

    def set_desired_capacity(self, group_name: str, capacity: int, honor_cooldown: bool = False) -> None:
        """.. seealso:: AutoScaling.Client.set_desired_capacity"""
        self.describe_group(group_name)
        self.conn.set_desired_capacity(
            AutoScalingGroupName=group_name, DesiredCapacity=capacity, HonorCooldown=honor_cooldown
        )

    def describe_group_or_none(self, group_name: str) -> dict[str, Any] | None:
        """The group, or None when there is none by that name.

        .. seealso:: AutoScaling.Client.describe_auto_scaling_groups
        """
        groups = self.conn.describe_auto_scaling_groups(AutoScalingGroupNames=[group_name])["AutoScalingGroups"]
        return groups[0] if groups else None

    def describe_policies(self, group_name: str) -> list[dict[str, Any]]:
        """Every scaling policy of the group. .. seealso:: AutoScaling.Client.describe_policies"""
        paginator = self.conn.get_paginator("describe_policies")
        return [p for page in paginator.paginate(AutoScalingGroupName=group_name) for p in page["ScalingPolicies"]]

    def protected_instance_ids(self, group_name: str) -> list[str]:
        """Instances of the group that are protected from scale in."""
        return [i["InstanceId"] for i in self.describe_group(group_name)["Instances"] if i["ProtectedFromScaleIn"]]

    def set_instance_protection(self, group_name: str, instance_ids: list[str], protected: bool) -> None:
        """.. seealso:: AutoScaling.Client.set_instance_protection"""
        if instance_ids:
            self.conn.set_instance_protection(
                AutoScalingGroupName=group_name, InstanceIds=instance_ids, ProtectedFromScaleIn=protected
            )

    def clear_scale_in_protection(self, group_name: str) -> list[str]:
        """Remove scale-in protection from every instance of the group (seed 003: a stuck
        protection leaks GPU cost); return the instances it was removed from."""
        protected = self.protected_instance_ids(group_name)
        self.set_instance_protection(group_name, protected, False)
        return protected
