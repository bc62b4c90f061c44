"""Run a Run Command document on one instance and wait, deferred, until it has run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import conf

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import CommandFailed
from bp_aws.utils.waiting import connection_kwargs, wait_then_resume

#: how much of a failed command's output its error repeats (the rest is in the task's log)
OUTPUT_TAIL = 2000


class RunCommandOperator(AwsOperator):
    """Send ``document_name`` to one instance, wait (deferrable) for the invocation to end,
    and fail unless it ended ``Success``, with the tail of its output in the error.

    What the provider's ``SsmRunCommandOperator`` does for one instance, on
    :class:`~bp_aws.base.AwsOperator` (a DAG file that uses it imports no boto3 when
    parsed), and with the failed command's own output where the provider says only that
    the waiter failed.

    .. seealso:: SSM.Client.send_command, SSM.Client.get_command_invocation

    :param document_name: the document. (templated)
    :param run_command_kwargs: the rest of SendCommand's arguments; ``InstanceIds`` names
        exactly one instance. (templated)
    :param waiter_delay: seconds between polls. (default: 5)
    :param waiter_max_attempts: polls before the wait fails. (default: 720, an hour at 5 s)
    :return: the command id.
    """

    aws_hook_path = "bp_aws.hooks.run_command.RunCommandHook"
    template_fields: Sequence[str] = aws_template_fields("document_name", "run_command_kwargs")
    template_fields_renderers = {"run_command_kwargs": "json"}

    def __init__(
        self,
        *,
        document_name: str,
        run_command_kwargs: dict[str, Any],
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 5,
        waiter_max_attempts: int = 720,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.document_name = document_name
        self.run_command_kwargs = run_command_kwargs
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> str:
        from bp_aws.triggers.ec2 import CommandInvocationTrigger

        arguments = dict(self.run_command_kwargs)
        instance_ids = arguments.get("InstanceIds") or []
        if len(instance_ids) != 1:
            raise ValueError(f"run_command_kwargs must name exactly one instance in InstanceIds, not {instance_ids}")
        [instance_id] = instance_ids
        command_id = self.hook.conn.send_command(DocumentName=self.document_name, **arguments)["Command"]["CommandId"]
        self.log.info("%s sent to %s: command %s", self.document_name, instance_id, command_id)
        trigger = CommandInvocationTrigger(
            command_id=command_id,
            instance_id=instance_id,
            waiter_delay=int(self.waiter_delay),
            waiter_max_attempts=int(self.waiter_max_attempts),
            **connection_kwargs(self),
        )
        return wait_then_resume(
            self, context, trigger, "execute_complete", {"command_id": command_id, "instance_id": instance_id}
        )

    def execute_complete(
        self, context: Any, event: dict[str, Any] | None = None, *, command_id: str, instance_id: str
    ) -> str:
        if event is not None and event.get("status") != "success":
            raise CommandFailed(
                f"{self.document_name} (command {command_id}) on {instance_id} did not end in time: "
                f"{event.get('message', '')}"
            )
        invocation = self.hook.invocations(command_id, [instance_id])[instance_id]
        status = invocation.get("Status")
        output = (invocation.get("StandardOutputContent") or "") + (invocation.get("StandardErrorContent") or "")
        self.log.info("%s on %s ended %s:\n%s", self.document_name, instance_id, status, output)
        if status != "Success":
            raise CommandFailed(
                f"{self.document_name} (command {command_id}) on {instance_id} ended {status} "
                f"({invocation.get('StatusDetails', '')}): {output[-OUTPUT_TAIL:]}"
            )
        return command_id
