"""Waits on EC2 instances and on the Run Command invocations sent to them, in the triggerer."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from bp_aws.hooks.ec2_instances import Ec2InstanceHook
from bp_aws.hooks.run_command import RunCommandHook
from bp_aws.triggers.base import SettledFirstPoll


class InstanceStatusOkTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Succeed once the instance passes its EC2 system and instance status checks
    (botocore's ``instance_status_ok``)."""

    aws_hook_class = Ec2InstanceHook

    def __init__(
        self,
        *,
        instance_id: str,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 60,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={"instance_id": instance_id},
            waiter_name="instance_status_ok",
            waiter_args={"InstanceIds": [instance_id]},
            failure_message=f"Instance {instance_id} did not pass its status checks",
            status_message=f"Status checks of {instance_id}",
            status_queries=["InstanceStatuses[0].InstanceState.Name", "InstanceStatuses[0].InstanceStatus.Status"],
            return_key="instance_id",
            return_value=instance_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class CommandInvocationTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Succeed once a Run Command invocation on one instance has ended, however it ended:
    the task reads its Status and output and judges them."""

    aws_hook_class = RunCommandHook

    def __init__(
        self,
        *,
        command_id: str,
        instance_id: str,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 60,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={"command_id": command_id, "instance_id": instance_id},
            waiter_name="command_settled",
            waiter_args={"CommandId": command_id, "InstanceId": instance_id},
            failure_message=f"Command {command_id} on {instance_id} did not end",
            status_message=f"Command {command_id} on {instance_id}",
            status_queries=["Status", "StatusDetails"],
            return_key="command_id",
            return_value=command_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class InstanceStateTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Succeed once the instance is in ``state`` (botocore's ``instance_<state>`` waiter:
    ``running``, ``stopped`` or ``terminated``)."""

    aws_hook_class = Ec2InstanceHook

    def __init__(
        self,
        *,
        instance_id: str,
        state: str,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 40,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={"instance_id": instance_id, "state": state},
            waiter_name=f"instance_{state}",
            waiter_args={"InstanceIds": [instance_id]},
            failure_message=f"Instance {instance_id} did not become {state}",
            status_message=f"Instance {instance_id} on its way to {state}",
            status_queries=["Reservations[0].Instances[0].State.Name"],
            return_key="instance_id",
            return_value=instance_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )
