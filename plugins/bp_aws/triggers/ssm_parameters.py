"""Poll an SSM parameter in the triggerer until it meets a condition.

AWS offers no waiter for Parameter Store, and a regular-expression condition can't be
a waiter acceptor, so this trigger polls with the hook's async client and evaluates
:func:`parameter_condition` - the same function the sensor's poke uses.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from bp_aws.hooks.ssm_parameters import SsmParameterHook
from bp_aws.triggers.base import configured_first_poll_delay


def parameter_condition(
    parameter: dict[str, Any] | None,
    *,
    equals: str | None = None,
    pattern: str | None = None,
    newer_than_version: int | None = None,
) -> bool:
    """Whether the parameter exists and meets every condition given."""
    if parameter is None:
        return False
    if equals is not None and parameter["Value"] != equals:
        return False
    if pattern is not None and not re.fullmatch(pattern, parameter["Value"]):
        return False
    return newer_than_version is None or parameter["Version"] > int(newer_than_version)


class SsmParameterTrigger(BaseTrigger):
    """Yield ``success`` with the parameter's version once the condition holds, or
    ``error`` after ``waiter_max_attempts`` polls."""

    def __init__(
        self,
        *,
        name: str,
        equals: str | None = None,
        pattern: str | None = None,
        newer_than_version: int | None = None,
        decrypt: bool = False,
        waiter_delay: int = 15,
        waiter_max_attempts: int = 120,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict | None = None,
        first_poll_delay: float | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.equals = equals
        self.pattern = pattern
        self.newer_than_version = newer_than_version
        self.decrypt = decrypt
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.first_poll_delay = configured_first_poll_delay() if first_poll_delay is None else first_poll_delay

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "name": self.name,
                "equals": self.equals,
                "pattern": self.pattern,
                "newer_than_version": self.newer_than_version,
                "decrypt": self.decrypt,
                "waiter_delay": self.waiter_delay,
                "waiter_max_attempts": self.waiter_max_attempts,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "first_poll_delay": self.first_poll_delay,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        state = "not read"
        hook = SsmParameterHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )
        await asyncio.sleep(self.first_poll_delay)  # see bp_aws.triggers.base
        async with await hook.get_async_conn() as client:
            for attempt in range(1, self.waiter_max_attempts + 1):
                try:
                    response = await client.get_parameter(Name=self.name, WithDecryption=self.decrypt)
                    parameter = response["Parameter"]
                except ClientError as error:
                    if error.response["Error"]["Code"] != "ParameterNotFound":
                        raise
                    parameter = None
                if parameter_condition(
                    parameter, equals=self.equals, pattern=self.pattern, newer_than_version=self.newer_than_version
                ):
                    yield TriggerEvent({"status": "success", "name": self.name, "version": parameter["Version"]})
                    return
                state = f"version {parameter['Version']}" if parameter else "absent"
                self.log.info("SSM parameter %s is %s; not yet as wanted (poll %d)", self.name, state, attempt)
                if attempt < self.waiter_max_attempts:
                    await asyncio.sleep(self.waiter_delay)
        yield TriggerEvent(
            {
                "status": "error",
                "name": self.name,
                "message": (
                    f"SSM parameter {self.name} did not meet the condition after {self.waiter_max_attempts} "
                    f"poll(s) over {(self.waiter_max_attempts - 1) * self.waiter_delay} s (last seen: {state})"
                ),
            }
        )
