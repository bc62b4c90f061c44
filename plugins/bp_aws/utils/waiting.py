"""The provider's one shape for a long operation, written once: defer to a trigger, or
(non-deferrable) run the very same waiter, with the same settings, in this worker.

The trigger object is the single description of the wait - waiter, arguments, delay,
attempts, failure and status messages - so the two modes can't drift apart. Here too:
the two small conversions every wait needs (poll attempts from a timeout, and a
templated number that may have rendered as nothing). The provider's waiting is imported
when a task waits: DAG files import this module through their operators when parsed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bp_aws.exceptions import WaitEnded

if TYPE_CHECKING:
    from airflow.providers.amazon.aws.triggers.base import AwsBaseWaiterTrigger

#: What a template renders for "no value" (None, an empty field, or ``{{ None }}``).
_NOTHING = (None, "", "None")


def optional_int(value: Any) -> int | None:
    """A templated integer field, or None when it rendered as nothing."""
    return None if value in _NOTHING else int(value)


def poll_attempts(timeout: float, interval: float) -> int:
    """How many polls ``interval`` seconds apart cover ``timeout``: one at the start and
    one at each interval up to the end (at least one)."""
    return max(1, int(float(timeout) // max(float(interval), 1)) + 1)


def connection_kwargs(task: Any) -> dict[str, Any]:
    """What a trigger needs to build the same hook as the task that defers to it."""
    return {
        "aws_conn_id": task.aws_conn_id,
        "region_name": task.region_name,
        "verify": task.verify,
        "botocore_config": task.botocore_config,
    }


def defer_or_wait(
    task: Any, trigger: AwsBaseWaiterTrigger, method_name: str, kwargs: dict[str, Any] | None = None
) -> None:
    """Defer ``task`` to ``trigger`` (resuming in ``method_name``, given ``kwargs``), or wait here.

    Waiting here raises :class:`~bp_aws.exceptions.WaitEnded` when the waiter reaches a
    failure state or runs out of attempts; an API error (access denied, a bad request)
    is not a wait that ended and propagates as it is. Callers judge the final state.
    """
    from airflow.providers.amazon.aws.exceptions import WaiterMaxAttemptsError, WaiterTerminalFailure
    from airflow.providers.amazon.aws.utils.waiter_with_logging import wait

    if task.deferrable:
        task.defer(trigger=trigger, method_name=method_name, kwargs=kwargs)
    try:
        wait(
            waiter=task.hook.get_waiter(trigger.waiter_name, config_overrides=trigger.waiter_config_overrides),
            waiter_delay=trigger.waiter_delay,
            waiter_max_attempts=trigger.attempts,
            args=trigger.waiter_args,
            failure_message=trigger.failure_message,
            status_message=trigger.status_message,
            status_args=trigger.status_queries,
        )
    except (WaiterTerminalFailure, WaiterMaxAttemptsError) as error:
        raise WaitEnded(str(error)) from error


def wait_then_resume(
    task: Any, context: Any, trigger: AwsBaseWaiterTrigger, method_name: str, kwargs: dict[str, Any]
) -> Any:
    """:func:`defer_or_wait`, then - when the wait ran here - resume in ``method_name`` as
    the triggerer would: with an error event when the wait ended badly, with none when it
    succeeded. One judgement of a wait, whichever mode ran it."""
    try:
        defer_or_wait(task, trigger, method_name, kwargs)
    except WaitEnded as ended:
        return getattr(task, method_name)(context, {"status": "error", "message": str(ended)}, **kwargs)
    return getattr(task, method_name)(context, None, **kwargs)
