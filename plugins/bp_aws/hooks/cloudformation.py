"""CloudFormation hook with the change-set calls the provider's hook lacks."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.cloud_formation import CloudFormationHook
from botocore.exceptions import ClientError

from bp_aws.exceptions import AwsResourceNotFound


class ChangeSetHook(CloudFormationHook):
    """Interact with CloudFormation stacks through change sets.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.cloud_formation.CloudFormationHook`
    """

    @cached_property
    def waiter_path(self) -> Path:
        """``stack_drift_detection_complete``: botocore has no drift detection waiter."""
        return Path(__file__).parents[1] / "waiters" / "cloudformation.json"

    def start_drift_detection(self, stack_name: str) -> str:
        """.. seealso:: CloudFormation.Client.detect_stack_drift"""
        return self.conn.detect_stack_drift(StackName=stack_name)["StackDriftDetectionId"]

    def drift_detection(self, detection_id: str) -> dict[str, Any]:
        """.. seealso:: CloudFormation.Client.describe_stack_drift_detection_status"""
        return self.conn.describe_stack_drift_detection_status(StackDriftDetectionId=detection_id)

    def drifted_resources(self, stack_name: str) -> list[dict[str, Any]]:
        """The resources the stack's latest drift detection found MODIFIED or DELETED.

        .. seealso:: CloudFormation.Client.describe_stack_resource_drifts"""
        drifts, token = [], {}
        while True:  # botocore has no paginator for it
            page = self.conn.describe_stack_resource_drifts(
                StackName=stack_name, StackResourceDriftStatusFilters=["MODIFIED", "DELETED"], **token
            )
            drifts += page["StackResourceDrifts"]
            if not page.get("NextToken"):
                return drifts
            token = {"NextToken": page["NextToken"]}

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
