"""CloudFormation hook with the change-set calls the provider's hook lacks."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook
from botocore.exceptions import ClientError

from bp_aws.exceptions import AwsResourceNotFound

#: AWS's StatusReason for a change set with nothing in it (there is no error code for it).
NO_CHANGE_REASONS = ("didn't contain changes", "No updates are to be performed")


class ChangeSetHook(CloudFormationHook):
    """Interact with CloudFormation stacks through change sets.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.cloud_formation.CloudFormationHook`
    """

    def describe_stack(self, stack_name: str) -> dict[str, Any] | None:
        """The stack, or None when it does not exist.

        CloudFormation answers a missing stack with a ValidationError and no other code,
        so its message is the only way to tell; anything else is raised.

        .. seealso:: CloudFormation.Client.describe_stacks
        """
        try:
            return self.conn.describe_stacks(StackName=stack_name)["Stacks"][0]
        except ClientError as error:
            if error.response["Error"]["Code"] == "ValidationError" and "does not exist" in str(error):
                return None
            raise

    def require_stack(self, stack_name: str) -> dict[str, Any]:
        stack = self.describe_stack(stack_name)
        if stack is None:
            raise AwsResourceNotFound("CloudFormation stack", stack_name)
        return stack

    def create_change_set(
        self,
        stack_name: str,
        change_set_name: str,
        *,
        template_body: str,
        parameters: dict[str, Any],
        tags: dict[str, str],
        capabilities: list[str],
        change_set_type: str,
    ) -> str:
        """.. seealso:: CloudFormation.Client.create_change_set"""
        return self.conn.create_change_set(
            StackName=stack_name,
            ChangeSetName=change_set_name,
            TemplateBody=template_body,
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in parameters.items()],
            Tags=[{"Key": k, "Value": str(v)} for k, v in tags.items()],
            Capabilities=capabilities,
            ChangeSetType=change_set_type,
        )["Id"]

    def describe_change_set(self, stack_name: str, change_set_name: str) -> dict[str, Any]:
        """The change set with every change (pages joined). .. seealso:: describe_change_set"""
        paginator = self.conn.get_paginator("describe_change_set")
        pages = list(paginator.paginate(StackName=stack_name, ChangeSetName=change_set_name))
        return {**pages[0], "Changes": [change for page in pages for change in page.get("Changes", [])]}

    def execute_change_set(self, stack_name: str, change_set_name: str) -> None:
        """.. seealso:: CloudFormation.Client.execute_change_set"""
        self.conn.execute_change_set(StackName=stack_name, ChangeSetName=change_set_name)

    def delete_change_set(self, stack_name: str, change_set_name: str) -> None:
        """.. seealso:: CloudFormation.Client.delete_change_set"""
        self.conn.delete_change_set(StackName=stack_name, ChangeSetName=change_set_name)

    def stack_events(self, stack_name: str) -> list[dict[str, Any]]:
        """Newest first. .. seealso:: CloudFormation.Client.describe_stack_events"""
        paginator = self.conn.get_paginator("describe_stack_events")
        return [event for page in paginator.paginate(StackName=stack_name) for event in page["StackEvents"]]

    @staticmethod
    def outputs(stack: dict[str, Any]) -> dict[str, str]:
        return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs") or []}
