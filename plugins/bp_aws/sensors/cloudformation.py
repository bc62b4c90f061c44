"""Wait for CloudFormation stack drift detections to end.

A plain :class:`BaseSensorOperator` with the provider imported when it runs, not an
``AwsBaseSensor``: the amazon provider costs the guardrails DAG about 190 ms at each
parse (every 30 s in the dag-processor), three times the rest of the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cached_property
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException


class StackDriftDetectionSensor(BaseSensorOperator):
    """Wait until every drift detection of ``detections`` (a key, e.g. the fleet -> the
    detection id DetectStackDrift returned) has ended. Deferrable: one detection at a time
    in the triggerer, back here between them to find the next one still running.

    :param detections: key -> drift detection id. (templated)
    :param aws_conn_id: the AWS connection. (templated)
    :return: key -> StackDriftStatus (``IN_SYNC``, ``DRIFTED``, ``UNKNOWN``).
    """

    DETECTING = "DETECTION_IN_PROGRESS"

    template_fields: Sequence[str] = ("detections", "aws_conn_id", "region_name")

    def __init__(
        self,
        *,
        detections: dict[str, str] | str,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        deferrable: bool = False,
        poke_interval: float = 10,
        timeout: float = 900,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.detections = detections
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.deferrable = deferrable

    @cached_property
    def hook(self):
        from bp_aws.hooks.cloudformation import ChangeSetHook

        return ChangeSetHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name)

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
            from bp_aws.utils.waiting import poll_attempts

            self.defer(
                trigger=DriftDetectionTrigger(
                    detection_id=self.detections[running[0]],
                    waiter_delay=int(self.poke_interval),
                    waiter_max_attempts=poll_attempts(self.timeout, self.poke_interval),
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                ),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout),
            )
        return {key: status.get("StackDriftStatus", "UNKNOWN") for key, status in statuses.items()}

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        if not event or event.get("status") != "success":
            raise AirflowException(f"Drift detection did not end: {event}")
        return self.execute(context)  # the next detection still running, if any
