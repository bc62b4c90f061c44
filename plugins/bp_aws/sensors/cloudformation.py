"""Wait for CloudFormation stack drift detections to end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.sensors.base_aws import AwsBaseSensor
from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.amazon.aws.utils.mixins import aws_template_fields
from airflow.providers.common.compat.sdk import conf

from bp_aws.hooks.cloudformation import ChangeSetHook
from bp_aws.triggers.cloudformation import DriftDetectionTrigger
from bp_aws.utils.waiting import connection_kwargs, poll_attempts


class StackDriftDetectionSensor(AwsBaseSensor[ChangeSetHook]):
    """Wait until every drift detection of ``detections`` (stack name -> the detection id
    DetectStackDrift returned) has ended. Deferrable: one detection at a time in the
    triggerer, back here between them to find the next one still running.

    :param detections: stack name -> drift detection id. (templated)
    :return: stack name -> StackDriftStatus (``IN_SYNC``, ``DRIFTED``, ``UNKNOWN``).
    """

    DETECTING = "DETECTION_IN_PROGRESS"

    aws_hook_class = ChangeSetHook
    template_fields: Sequence[str] = aws_template_fields("detections")

    def __init__(
        self,
        *,
        detections: dict[str, str] | str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 10,
        timeout: float = 900,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.detections = detections
        self.deferrable = deferrable

    def _statuses(self) -> dict[str, dict[str, Any]]:
        return {stack: self.hook.drift_detection(detection) for stack, detection in self.detections.items()}

    def _running(self, statuses: dict[str, dict[str, Any]]) -> list[str]:
        running = [stack for stack, status in statuses.items() if status["DetectionStatus"] == self.DETECTING]
        self.log.info(
            "Drift detection: %d of %d stack(s) done%s",
            len(statuses) - len(running),
            len(statuses),
            f", waiting for {', '.join(running)}" if running else "",
        )
        return running

    def poke(self, context: Any) -> bool:
        return not self._running(self._statuses())

    def execute(self, context: Any) -> dict[str, str]:
        statuses = self._statuses()
        running = self._running(statuses)
        if running and not self.deferrable:
            super().execute(context)
            statuses = self._statuses()
        elif running:
            self.defer(
                trigger=DriftDetectionTrigger(
                    detection_id=self.detections[running[0]],
                    waiter_delay=int(self.poke_interval),
                    waiter_max_attempts=poll_attempts(self.timeout, self.poke_interval),
                    **connection_kwargs(self),
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        return {stack: status.get("StackDriftStatus", "UNKNOWN") for stack, status in statuses.items()}

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        validate_execute_complete_event(event)
        return self.execute(context)  # the next detection still running, if any
