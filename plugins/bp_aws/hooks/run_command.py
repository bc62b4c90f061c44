"""SSM Run Command: send a document to instances and collect what each one answered."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from botocore.exceptions import WaiterError

#: SendCommand takes at most 50 instance ids per call (SSM API reference, InstanceIds).
SEND_COMMAND_MAX_INSTANCES = 50


class RunCommandHook(SsmHook):
    """Run a short command document and gather each instance's invocation.

    Long commands belong in the deferrable :class:`~bp_aws.operators.run_command.RunCommandOperator`;
    this is for answers that take seconds (a status report), read right after.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.ssm.SsmHook`
    """

    @cached_property
    def waiter_path(self) -> Path:
        """``command_settled``: any end of one invocation (the caller judges it)."""
        return Path(__file__).parents[1] / "waiters" / "ssm.json"

    def invocations(self, command_id: str, instance_ids: list[str]) -> dict[str, dict[str, Any]]:
        """GetCommandInvocation of each instance. .. seealso:: SSM.Client.get_command_invocation"""
        return {i: self.get_command_invocation(command_id, i) for i in instance_ids}

    def invocations_of(self, instance_id: str, document_name: str) -> list[dict[str, Any]]:
        """Every invocation of ``document_name`` on the instance, ended or not.

        .. seealso:: SSM.Client.list_command_invocations
        """
        paginator = self.conn.get_paginator("list_command_invocations")
        return [
            invocation
            for page in paginator.paginate(InstanceId=instance_id)
            for invocation in page["CommandInvocations"]
            if invocation.get("DocumentName") == document_name
        ]

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
        """Send ``document_name`` to the instances (one SendCommand per 50 of them), wait
        for each (``command_executed``), and return every invocation, failed ones included.

        .. seealso:: SSM.Client.send_command
        """
        sent = []
        for start in range(0, len(instance_ids), SEND_COMMAND_MAX_INSTANCES):
            batch = instance_ids[start : start + SEND_COMMAND_MAX_INSTANCES]
            command_id = self.conn.send_command(
                DocumentName=document_name,
                InstanceIds=batch,
                Parameters=parameters or {},
                Comment=comment[:100],
            )["Command"]["CommandId"]
            sent.append((command_id, batch))
        waiter = self.get_waiter("command_executed")
        answers: dict[str, dict[str, Any]] = {}
        for command_id, batch in sent:
            for instance_id in batch:
                try:
                    waiter.wait(
                        CommandId=command_id,
                        InstanceId=instance_id,
                        WaiterConfig={"Delay": delay, "MaxAttempts": max_attempts},
                    )
                except WaiterError as error:  # a failed invocation is an answer too: judged by the caller
                    self.log.info("Command %s on %s ended: %s", command_id, instance_id, error)
            answers.update(self.invocations(command_id, batch))
        return answers
