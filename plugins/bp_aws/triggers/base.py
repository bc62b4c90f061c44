"""The base of the project's waiter triggers: the provider's, with a first poll that
comes ``first_poll_delay`` seconds after the deferral.

Airflow 3.3.2 can lose a task whose trigger fires within about two seconds of its
deferral: the scheduler sees the deferral's executor event as "success while running",
and the task's own terminal report is refused with HTTP 409 (apache/airflow #67287,
#71580, #72716). AWS rarely answers that fast; the emulator does (a change set completes
at once). A first poll five seconds in keeps every resume outside that window; the tasks
that defer are also given a retry, and are safe to run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.triggers.base import TriggerEvent


def configured_first_poll_delay() -> float:
    """``[bp] trigger_first_poll_delay`` seconds (default 5): outside the race window, short
    beside any real wait."""
    return conf.getfloat("bp", "trigger_first_poll_delay", fallback=5.0)


class SettledFirstPoll:
    """Put first in the bases of an :class:`AwsBaseWaiterTrigger`: its first poll waits
    ``first_poll_delay`` seconds (:func:`configured_first_poll_delay` when not given).
    A mixin, not a subclass: the provider checks every subclass for an ``aws_hook_class``."""

    def __init__(
        self, *, serialized_fields: dict[str, Any], first_poll_delay: float | None = None, **kwargs: Any
    ) -> None:
        delay = configured_first_poll_delay() if first_poll_delay is None else first_poll_delay
        super().__init__(serialized_fields={**serialized_fields, "first_poll_delay": delay}, **kwargs)
        self.first_poll_delay = delay

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.first_poll_delay)
        async for event in super().run():  # the waiter trigger's own polling
            yield event
