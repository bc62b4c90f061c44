"""SSM Run Command: send a document to instances and collect what each one answered."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from botocore.exceptions import WaiterError


class RunCommandHook(SsmHook):
    """Run a short command document and gather each instance's invocation.

    Long commands belong in the provider's deferrable ``SsmRunCommandOperator``; this is
    for answers that take seconds (a status report), read right after.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.ssm.SsmHook`
    """

    def invocations(self, command_id: str, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
        """GetCommandInvocation of each instance. .. seealso:: SSM.Client.get_command_invocation"""
        return {i: self.get_command_invocation(command_id, i) for i in instance_ids}

    def run_and_collect(
        self,
        document_name: str,
        instance_ids: list[str],
        *,
        parameters: dict[str, list[str]] | None = None,
        comment: str = "",
        delay: int = 2,
        max_attempts: int = 60,
    ) -> dict[str, dict[str, Any]]:
        """Send ``document_name`` to the instances, wait for each (``command_executed``),
        and return every invocation, failed ones included.

        .. seealso:: SSM.Client.send_command
        """
        command_id = self.conn.send_command(
            DocumentName=document_name,
            InstanceIds=instance_ids,
            Parameters=parameters or {},
            Comment=comment[:100],
        )["Command"]["CommandId"]
        waiter = self.get_waiter("command_executed")
        for instance_id in instance_ids:
            try:
                waiter.wait(
                    CommandId=command_id,
                    InstanceId=instance_id,
                    WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts},
                )
            except WaiterError as error:  # a failed invocation is an answer too: judged by the caller
                self.log.info("Command %s on %s ended: %s", command_id, instance_id, error)
        return self.invocations(command_id, instance_ids)
