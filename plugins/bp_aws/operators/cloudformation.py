"""Deploy and delete CloudFormation stacks through change sets, with the evidence in the log."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.utils import validate_execute_complete_event
from airflow.providers.common.compat.sdk import conf
from botocore.exceptions import WaiterError

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import StackDeployFailed, WaitEnded
from bp_aws.utils.waiting import connection_kwargs, defer_or_wait
from include.tables import format_table

#: AWS's StatusReason for a change set with nothing in it (there is no error code for it).
NO_CHANGE_REASONS = ("didn't contain changes", "No updates are to be performed")
BUSY_SUFFIX = "_IN_PROGRESS"
COMPLETE = {"CREATE": "CREATE_COMPLETE", "UPDATE": "UPDATE_COMPLETE"}
#: What CloudFormation undid, said after the failure, for the run's one-paragraph summary.
ROLLED_BACK = {
    "ROLLBACK_COMPLETE": ". CloudFormation rolled the create back: the stack holds no resources, "
    "and the next run deletes it and creates it again.",
    "UPDATE_ROLLBACK_COMPLETE": ". CloudFormation rolled the update back: the stack runs its previous "
    "template and parameters.",
}


def change_set_table(change_set: dict[str, Any]) -> str:
    rows = [
        (
            change["ResourceChange"].get("Action"),
            change["ResourceChange"].get("LogicalResourceId"),
            change["ResourceChange"].get("ResourceType"),
            change["ResourceChange"].get("Replacement", "-"),
        )
        for change in change_set.get("Changes", [])
    ]
    return format_table(("ACTION", "LOGICAL ID", "RESOURCE TYPE", "REPLACEMENT"), rows)


def failure_events_table(events: list[dict[str, Any]]) -> str:
    rows = [
        (e.get("LogicalResourceId"), e.get("ResourceStatus"), e.get("ResourceStatusReason"))
        for e in reversed(events)
        if "FAILED" in (e.get("ResourceStatus") or "") or "ROLLBACK" in (e.get("ResourceStatus") or "")
    ]
    return format_table(("LOGICAL ID", "STATUS", "REASON"), rows)


class _StackWaitMixin:
    deferrable: bool
    waiter_delay: int
    waiter_max_attempts: int

    def _wait_stack(self, stack_name: str, waiter_name: str, method_name: str) -> None:
        """Defer, or wait in this worker; a terminal failure is judged by the caller."""
        from bp_aws.triggers.cloudformation import StackCompleteTrigger

        trigger = StackCompleteTrigger(
            stack_name=stack_name,
            waiter_name=waiter_name,
            waiter_delay=self.waiter_delay,
            waiter_max_attempts=self.waiter_max_attempts,
            **connection_kwargs(self),
        )
        try:
            defer_or_wait(self, trigger, method_name)
        except WaitEnded as error:  # the verdict comes from the stack's own state and events
            self.log.warning("Waiting on %s ended: %s", stack_name, error)

    def _raise_with_events(self, stack_name: str, what: str, status: str) -> None:
        events = self.hook.stack_events(stack_name)
        started = self._started_at
        recent = [e for e in events if started is None or e["Timestamp"] >= started]
        table = failure_events_table(recent or events)
        self.log.error("Stack %s %s ended %s; failing events:\n%s", stack_name, what, status, table)
        reasons = "; ".join(
            f"{e['LogicalResourceId']} {e['ResourceStatus']}: {e['ResourceStatusReason']}"
            for e in reversed(recent or events)
            if e.get("ResourceStatusReason") and "FAILED" in e.get("ResourceStatus", "")
        )
        raise StackDeployFailed(
            f"Stack {stack_name} {what} ended {status}"
            + (f": {reasons}" if reasons else "")
            + ROLLED_BACK.get(status, "")
        )

    _started_at: datetime | None = None


class CloudFormationDeployOperator(_StackWaitMixin, AwsOperator):
    """Create or update a stack through a change set and wait until it is complete.

    The change set is logged as a table (action, logical id, resource type,
    replacement) before it runs. A change set with no change is a successful no-op.
    A stack that rolls back fails the task with the failing stack events. A stack left
    in ROLLBACK_COMPLETE by an earlier failed create is deleted first (AWS can't update
    it), so re-running a failed deployment works.

    .. seealso:: CloudFormation.Client.create_change_set, execute_change_set

    :param stack_name: the stack. (templated)
    :param template_body: the template text; or give ``template_file``. (templated)
    :param template_file: path of the template file. (templated)
    :param parameters: template parameters. (templated)
    :param tags: stack tags (propagated to resources). (templated)
    :param capabilities: e.g. ``["CAPABILITY_NAMED_IAM"]``.
    :return: the stack's outputs as a dict.
    """

    aws_hook_path = "bp_aws.hooks.cloudformation.ChangeSetHook"
    template_fields: Sequence[str] = aws_template_fields(
        "stack_name", "template_body", "template_file", "parameters", "tags"
    )
    template_fields_renderers = {"parameters": "json", "tags": "json", "template_body": "yaml"}

    def __init__(
        self,
        *,
        stack_name: str,
        template_body: str | None = None,
        template_file: str | None = None,
        parameters: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        capabilities: Sequence[str] = ("CAPABILITY_NAMED_IAM",),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (template_body is None) == (template_file is None):
            raise ValueError("give exactly one of template_body and template_file")
        self.stack_name = stack_name
        self.template_body = template_body
        self.template_file = template_file
        self.parameters = parameters or {}
        self.tags = tags or {}
        self.capabilities = list(capabilities)
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> dict[str, str]:
        self._started_at = datetime.now(UTC)
        stack = self.hook.describe_stack(self.stack_name)
        if stack and stack["StackStatus"].endswith(BUSY_SUFFIX) and stack["StackStatus"] != "REVIEW_IN_PROGRESS":
            raise StackDeployFailed(
                f"Stack {self.stack_name} is busy ({stack['StackStatus']}); wait for it to finish, then run again"
            )
        if stack and stack["StackStatus"] == "ROLLBACK_COMPLETE":
            self.log.warning("Stack %s is ROLLBACK_COMPLETE from a failed create: deleting it first", self.stack_name)
            self.hook.delete_stack(self.stack_name)
            self._wait_stack(self.stack_name, "stack_delete_complete", "deploy_after_delete")
            stack = None
        return self._deploy(context, stack)

    def deploy_after_delete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        validate_execute_complete_event(event)
        self._started_at = datetime.now(UTC)
        return self._deploy(context, None)

    def _template(self) -> str:
        return self.template_body if self.template_body is not None else Path(self.template_file).read_text()

    def _deploy(self, context: Any, stack: dict[str, Any] | None) -> dict[str, str]:
        change_set_type = "UPDATE" if stack and stack["StackStatus"] != "REVIEW_IN_PROGRESS" else "CREATE"
        name = f"airflow-{uuid.uuid4().hex[:16]}"
        self.hook.create_change_set(
            self.stack_name,
            name,
            template_body=self._template(),
            parameters=self.parameters,
            tags=self.tags,
            capabilities=self.capabilities,
            change_set_type=change_set_type,
        )
        try:
            self.hook.get_waiter("change_set_create_complete").wait(
                StackName=self.stack_name,
                ChangeSetName=name,
                WaiterConfig={"Delay": min(self.waiter_delay, 5) or 1, "MaxAttempts": 120},
            )
        except WaiterError as error:  # FAILED change sets are judged below, by their reason
            self.log.info("Change set %s did not become CREATE_COMPLETE: %s", name, error)
        change_set = self.hook.describe_change_set(self.stack_name, name)
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason") or ""
            if any(marker in reason for marker in NO_CHANGE_REASONS):
                self.log.info("Stack %s is already up to date: %s", self.stack_name, reason)
                self.hook.delete_change_set(self.stack_name, name)
                return self.hook.outputs(self.hook.describe_stack(self.stack_name))
            raise StackDeployFailed(f"Change set {name} for stack {self.stack_name} failed: {reason}")

        self.log.info(
            "%s change set %s for stack %s:\n%s", change_set_type, name, self.stack_name, change_set_table(change_set)
        )
        self.hook.execute_change_set(self.stack_name, name)
        waiter = "stack_create_complete" if change_set_type == "CREATE" else "stack_update_complete"
        self._wait_stack(self.stack_name, waiter, "execute_complete")
        return self._verdict(COMPLETE[change_set_type])

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> dict[str, str]:
        validate_execute_complete_event(event)
        stack = self.hook.require_stack(self.stack_name)
        return self._verdict("UPDATE_COMPLETE" if stack["StackStatus"].startswith("UPDATE") else "CREATE_COMPLETE")

    def _verdict(self, wanted: str) -> dict[str, str]:
        stack = self.hook.describe_stack(self.stack_name)
        status = stack["StackStatus"] if stack else "DELETED"
        if status != wanted:
            self._raise_with_events(self.stack_name, "deployment", status)
        outputs = self.hook.outputs(stack)
        self.log.info("Stack %s is %s; outputs: %s", self.stack_name, status, outputs)
        return outputs


class CloudFormationDeleteStackOperator(_StackWaitMixin, AwsOperator):
    """Delete a stack and wait until it is gone; a stack that is already gone is a no-op.

    A DELETE_FAILED stack fails the task with the failing events.

    .. seealso:: CloudFormation.Client.delete_stack

    :param stack_name: the stack. (templated)
    """

    aws_hook_path = "bp_aws.hooks.cloudformation.ChangeSetHook"
    template_fields: Sequence[str] = aws_template_fields("stack_name")

    def __init__(
        self,
        *,
        stack_name: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        waiter_delay: int = 30,
        waiter_max_attempts: int = 120,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.stack_name = stack_name
        self.deferrable = deferrable
        self.waiter_delay = waiter_delay
        self.waiter_max_attempts = waiter_max_attempts

    def execute(self, context: Any) -> None:
        self._started_at = datetime.now(UTC)
        if self.hook.describe_stack(self.stack_name) is None:
            self.log.info("Stack %s does not exist: nothing to delete", self.stack_name)
            return
        self.hook.delete_stack(self.stack_name)
        self._wait_stack(self.stack_name, "stack_delete_complete", "execute_complete")
        self._verdict()

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> None:
        validate_execute_complete_event(event)
        self._verdict()

    def _verdict(self) -> None:
        stack = self.hook.describe_stack(self.stack_name)
        if stack and stack["StackStatus"] != "DELETE_COMPLETE":
            self._raise_with_events(self.stack_name, "deletion", stack["StackStatus"])
        self.log.info("Stack %s is deleted", self.stack_name)
