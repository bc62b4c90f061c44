"""Triggers that wait on Auto Scaling in the triggerer, holding no worker slot."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from bp_aws.hooks.autoscaling import AutoScalingHook
from bp_aws.triggers.base import SettledFirstPoll

#: Null-safe (a deleted group must not break the status line).
CAPACITY_STATUS_QUERIES = ["AutoScalingGroups[0].DesiredCapacity", "AutoScalingGroups[0].Instances[].LifecycleState"]
REFRESH_STATUS_QUERIES = [
    "InstanceRefreshes[0].Status",
    "InstanceRefreshes[0].PercentageComplete",
    "InstanceRefreshes[0].InstancesToUpdate",
    "InstanceRefreshes[0].StatusReason",
]


class InstanceRefreshTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Wait for an instance refresh to end; success only on ``Successful``.

    :param auto_scaling_group_name: the group being refreshed.
    :param instance_refresh_id: the refresh to follow.
    :param wait_for_any_end: succeed on any terminal state (used after a cancel or a
        rollback, where the end itself is what we wait for).
    """

    aws_hook_class = AutoScalingHook

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        instance_refresh_id: str,
        wait_for_any_end: bool = False,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 240,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={
                "auto_scaling_group_name": auto_scaling_group_name,
                "instance_refresh_id": instance_refresh_id,
                "wait_for_any_end": wait_for_any_end,
            },
            waiter_name="instance_refresh_ended" if wait_for_any_end else "instance_refresh_complete",
            waiter_args={"AutoScalingGroupName": auto_scaling_group_name, "InstanceRefreshIds": [instance_refresh_id]},
            failure_message=f"Instance refresh {instance_refresh_id} of {auto_scaling_group_name} did not succeed",
            status_message=f"Instance refresh {instance_refresh_id} of {auto_scaling_group_name}",
            status_queries=REFRESH_STATUS_QUERIES,
            return_key="instance_refresh_id",
            return_value=instance_refresh_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class GroupCapacityTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Wait until a group is settled at a capacity (its desired capacity when None)."""

    aws_hook_class = AutoScalingHook

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        capacity: int | None = None,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        target = "its desired capacity" if capacity is None else f"{capacity} instance(s)"
        super().__init__(
            serialized_fields={"auto_scaling_group_name": auto_scaling_group_name, "capacity": capacity},
            waiter_name="group_at_capacity",
            waiter_args={"AutoScalingGroupNames": [auto_scaling_group_name]},
            waiter_config_overrides=AutoScalingHook.capacity_waiter_config(capacity),
            failure_message=f"Auto Scaling group {auto_scaling_group_name} did not reach {target}",
            status_message=f"Auto Scaling group {auto_scaling_group_name} (desired, instance states)",
            status_queries=CAPACITY_STATUS_QUERIES,
            return_key="auto_scaling_group_name",
            return_value=auto_scaling_group_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class RefreshCheckpointTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Wait for an instance refresh to reach a checkpoint: ``percentage`` of the group
    replaced (100: the refresh Successful); an error event when it ends any other way.

    :param auto_scaling_group_name: the group being refreshed.
    :param instance_refresh_id: the refresh to follow.
    :param percentage: the checkpoint, as in the refresh's CheckpointPercentages.
    """

    aws_hook_class = AutoScalingHook

    def __init__(
        self,
        *,
        auto_scaling_group_name: str,
        instance_refresh_id: str,
        percentage: int,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 1440,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={
                "auto_scaling_group_name": auto_scaling_group_name,
                "instance_refresh_id": instance_refresh_id,
                "percentage": percentage,
            },
            waiter_name="instance_refresh_checkpoint",
            waiter_args={"AutoScalingGroupName": auto_scaling_group_name, "InstanceRefreshIds": [instance_refresh_id]},
            waiter_config_overrides=AutoScalingHook.checkpoint_waiter_config(percentage),
            failure_message=f"Instance refresh {instance_refresh_id} of {auto_scaling_group_name} "
            f"ended before its {percentage}% checkpoint",
            status_message=f"Instance refresh {instance_refresh_id} of {auto_scaling_group_name}",
            status_queries=REFRESH_STATUS_QUERIES,
            return_key="instance_refresh_id",
            return_value=instance_refresh_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )
