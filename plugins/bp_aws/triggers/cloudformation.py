"""Wait for a CloudFormation stack in the triggerer, with botocore's own waiters."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from bp_aws.hooks.cloudformation import ChangeSetHook
from bp_aws.triggers.base import SettledFirstPoll

STACK_STATUS_QUERIES = ["Stacks[0].StackStatus", "Stacks[0].StackStatusReason"]


class StackCompleteTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Wait for ``stack_create_complete``, ``stack_update_complete`` or ``stack_delete_complete``.

    :param stack_name: the stack.
    :param waiter_name: one of botocore's CloudFormation stack waiters.
    """

    aws_hook_class = ChangeSetHook

    def __init__(
        self,
        *,
        stack_name: str,
        waiter_name: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={"stack_name": stack_name, "waiter_name": waiter_name},
            waiter_name=waiter_name,
            waiter_args={"StackName": stack_name},
            failure_message=f"Stack {stack_name} did not complete",
            status_message=f"Stack {stack_name}",
            status_queries=STACK_STATUS_QUERIES,
            return_key="stack_name",
            return_value=stack_name,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )


class DriftDetectionTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Wait for one stack drift detection to end (``DETECTION_COMPLETE``, or
    ``DETECTION_FAILED``: some resources could not be checked, the rest were)."""

    aws_hook_class = ChangeSetHook

    def __init__(
        self,
        *,
        detection_id: str,
        waiter_delay: int = 10,
        waiter_max_attempts: int = 60,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={"detection_id": detection_id},
            waiter_name="stack_drift_detection_complete",
            waiter_args={"StackDriftDetectionId": detection_id},
            failure_message=f"Drift detection {detection_id} did not end",
            status_message=f"Drift detection {detection_id}",
            status_queries=["DetectionStatus", "DetectionStatusReason"],
            return_key="detection_id",
            return_value=detection_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )
