"""Wait for an AMI to settle, in the triggerer."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

from bp_aws.hooks.ami import AmiHook
from bp_aws.triggers.base import SettledFirstPoll

IMAGE_STATUS_QUERIES = ["Images[0].State", "Images[0].StateReason.Message"]


class ImageAvailableTrigger(SettledFirstPoll, AwsBaseWaiterTrigger):
    """Succeed when the image is ``available``; fail when it is failed, invalid,
    deregistered or missing."""

    aws_hook_class = AmiHook

    def __init__(
        self,
        *,
        image_id: str,
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(
            serialized_fields={"image_id": image_id},
            waiter_name="image_settled",
            waiter_args={"ImageIds": [image_id]},
            failure_message=f"AMI {image_id} did not become available",
            status_message=f"AMI {image_id}",
            status_queries=IMAGE_STATUS_QUERIES,
            return_key="image_id",
            return_value=image_id,
            waiter_delay=waiter_delay,
            waiter_max_attempts=waiter_max_attempts,
            aws_conn_id=aws_conn_id,
            **kwargs,
        )
