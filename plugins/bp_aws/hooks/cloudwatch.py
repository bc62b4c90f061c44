"""CloudWatch alarms hook (the provider has no CloudWatch hook)."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook


class AlarmHook(AwsBaseHook):
    """Read CloudWatch metric alarms through a boto3 ``cloudwatch`` client.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "cloudwatch"
        super().__init__(*args, **kwargs)

    def describe_alarms(self, names: list[str]) -> dict[str, dict[str, Any]]:
        """The metric alarms by name; a name with no alarm is left out.

        .. seealso:: CloudWatch.Client.describe_alarms
        """
        paginator = self.conn.get_paginator("describe_alarms")
        pages = paginator.paginate(AlarmNames=names, AlarmTypes=["MetricAlarm"])
        return {alarm["AlarmName"]: alarm for page in pages for alarm in page["MetricAlarms"]}
