"""Wait for CloudFormation stack drift detections to end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.exceptions import AirflowException

from bp_aws.base import AwsSensor, aws_template_fields


class StackDriftDetectionSensor(AwsSensor):
    """Wait until every drift detection of ``detections`` (a key, e.g. the fleet -> the
    detection id DetectStackDrift returned) has ended. Deferrable: one detection at a time
    in the triggerer, back here between them to find the next one still running.

    :param detections: key -> drift detection id. (templated)
    :param aws_conn_id: the AWS connection. (templated)
    :return: key -> StackDriftStatus (``IN_SYNC``, ``DRIFTED``, ``UNKNOWN``).
    """

    DETECTING = "DETECTION_IN_PROGRESS"

    aws_hook_path = "bp_aws.hooks.cloudformation.ChangeSetHook"
    template_fields: Sequence[str] = aws_template_fields("detections")

    def __init__(
        self,
        *,
        detections: dict[str, str] | str,
        deferrable: bool = False,
        poke_interval: float = 10,
        timeout: float = 900,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.detections = detections
        self.deferrable = deferrable

    def _statuses(self) -> dict[str, dict[str, Any]]:
        return {key: self.hook.drift_detection(detection) for key, detection in self.detections.items()}

    def _running(self, statuses: dict[str, dict[str, Any]]) -> list[str]:
        running = [key for key, status in statuses.items() if status["DetectionStatus"] == self.DETECTING]
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
            from bp_aws.triggers.cloudformation import DriftDetectionTrigger
            from bp_aws.utils.waiting import connection_kwargs, poll_attempts

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
        return {key: status.get("StackDriftStatus", "UNKNOWN") for key, status in statuses.items()}

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        if not event or event.get("status") != "success":
            raise AirflowException(f"Drift detection did not end: {event}")
        return self.execute(context)  # the next detection still running, if any
