"""Wait for an AMI to become available."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import conf

from bp_aws.base import AwsSensor, aws_template_fields
from bp_aws.exceptions import ImageNotAvailable
from bp_aws.utils.waiting import connection_kwargs, poll_attempts


class ImageAvailableSensor(AwsSensor):
    """Wait until an AMI is ``available`` (from ``pending``); fail with AWS's StateReason
    when it ends ``failed``, ``invalid``, ``deregistered`` or ``error``.

    :param image_id: the AMI. (templated)
    :return: the image id.
    """

    SUCCESS_STATES = ("available",)
    FAILURE_STATES = ("failed", "invalid", "deregistered", "error")
    INTERMEDIATE_STATES = ("pending", "transient", "disabled")

    aws_hook_path = "bp_aws.hooks.ami.AmiHook"
    template_fields: Sequence[str] = aws_template_fields("image_id")

    def __init__(
        self,
        *,
        image_id: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30,
        timeout: float = 3600,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.image_id = image_id
        self.deferrable = deferrable

    def _verdict(self) -> bool:
        image = self.hook.describe_image(self.image_id)
        state = image["State"]
        reason = (image.get("StateReason") or {}).get("Message", "")
        self.log.info(
            "AMI %s (%s) is %s%s", self.image_id, image.get("Name", ""), state, f": {reason}" if reason else ""
        )
        if state in self.FAILURE_STATES:
            raise ImageNotAvailable(f"AMI {self.image_id} is {state}" + (f": {reason}" if reason else ""))
        return state in self.SUCCESS_STATES

    def poke(self, context: Any) -> bool:
        return self._verdict()

    def execute(self, context: Any) -> str:
        if not self.deferrable or self._verdict():
            super().execute(context)
            return self.image_id
        from bp_aws.triggers.ami import ImageAvailableTrigger

        self.defer(
            trigger=ImageAvailableTrigger(
                image_id=self.image_id,
                waiter_delay=int(self.poke_interval),
                waiter_max_attempts=poll_attempts(self.timeout, self.poke_interval),
                **connection_kwargs(self),
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return self.image_id  # not reached: defer() raises

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> str:
        validate_execute_complete_event(event)
        if not self._verdict():  # the final state, with its reason, decides
            raise ImageNotAvailable(f"AMI {self.image_id} is not available: {event.get('message', '')}")
        return self.image_id
