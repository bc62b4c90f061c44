"""Wait for an SSM parameter: to exist, to equal a value, to match a pattern, or to
pass a version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import conf
from airflow.sdk.log import mask_secret

from bp_aws.base import AwsSensor, aws_template_fields
from bp_aws.exceptions import ParameterConditionNotMet
from bp_aws.utils.waiting import connection_kwargs, optional_int, poll_attempts


class SsmParameterSensor(AwsSensor):
    """Wait until an SSM parameter exists and meets every condition given.

    :param name: the parameter. (templated)
    :param equals: wait until its value equals this. (templated)
    :param pattern: wait until its whole value matches this regular expression. (templated)
    :param newer_than_version: wait until its version is greater than this. (templated)
    :param deferrable: wait in the triggerer. (default: ``operators.default_deferrable``)
    :param max_wait_seconds: overrides ``timeout`` when rendered, so a DAG param can bound
        the wait (``timeout`` itself can't be templated). (templated)
    :param on_timeout: what the reader should do when the wait ends unmet, added to the
        failure (e.g. which UI writes the parameter). (templated)
    :return: the parameter's version when the condition held.
    """

    aws_hook_path = "bp_aws.hooks.ssm_parameters.SsmParameterHook"
    template_fields: Sequence[str] = aws_template_fields(
        "name", "equals", "pattern", "newer_than_version", "max_wait_seconds", "on_timeout"
    )

    def __init__(
        self,
        *,
        name: str,
        equals: str | None = None,
        pattern: str | None = None,
        newer_than_version: int | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 15,
        timeout: float = 1800,
        max_wait_seconds: str | float | None = None,
        on_timeout: str = "",
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.name = name
        self.equals = equals
        self.pattern = pattern
        self.newer_than_version = newer_than_version
        self.max_wait_seconds = max_wait_seconds
        self.on_timeout = on_timeout
        self.deferrable = deferrable
        self._version: int | None = None

    def _conditions(self) -> dict[str, Any]:
        return {
            "equals": self.equals,
            "pattern": self.pattern,
            "newer_than_version": optional_int(self.newer_than_version),
        }

    def poke(self, context: Any) -> bool:
        from bp_aws.triggers.ssm_parameters import parameter_condition

        # Only decrypt what a condition has to read; mask it before anything is logged.
        decrypt = self.equals is not None or self.pattern is not None
        parameter = self.hook.get(self.name, decrypt=decrypt)
        if parameter is None:
            self.log.info("SSM parameter %s does not exist yet", self.name)
            return False
        secure = parameter["Type"] == "SecureString"
        if secure and decrypt:
            mask_secret(parameter["Value"], self.name)
        shown = "***" if secure else parameter["Value"]
        self.log.info("SSM parameter %s: version %s, value %s", self.name, parameter["Version"], shown)
        if parameter_condition(parameter, **self._conditions()):
            self._version = parameter["Version"]
            return True
        return False

    def execute(self, context: Any) -> int | None:
        if optional_int(self.max_wait_seconds) is not None:
            self.timeout = float(self.max_wait_seconds)
        if not self.deferrable or self.poke(context):
            super().execute(context)
            return self._version
        from bp_aws.triggers.ssm_parameters import SsmParameterTrigger

        self.defer(
            trigger=SsmParameterTrigger(
                name=self.name,
                decrypt=self.equals is not None or self.pattern is not None,
                waiter_delay=int(self.poke_interval),
                waiter_max_attempts=poll_attempts(self.timeout, self.poke_interval),
                **connection_kwargs(self),
                **self._conditions(),
            ),
            method_name="execute_complete",
            # a safety net: the trigger's own poll budget ends the wait first, with its message
            timeout=timedelta(seconds=self.timeout + 2 * self.poke_interval),
        )
        return None  # not reached: defer() raises

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> int:
        event = validate_execute_complete_event(event)
        if event["status"] != "success":
            raise ParameterConditionNotMet(" ".join(filter(None, (event["message"] + ".", self.on_timeout))))
        self.log.info("SSM parameter %s is as wanted at version %s", self.name, event["version"])
        return event["version"]
