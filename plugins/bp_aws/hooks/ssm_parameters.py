"""SSM Parameter Store hook: read, write, history and tags of single parameters."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from airflow.providers.amazon.aws.hooks.ssm import SsmHook
from botocore.exceptions import ClientError

from bp_aws.exceptions import AwsResourceNotFound
from include import aws_reads


class SsmParameterHook(SsmHook):
    """Interact with SSM Parameter Store through a boto3 ``ssm`` client.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.ssm.SsmHook`
    """

    @cached_property
    def waiter_path(self) -> Path:
        return Path(__file__).parents[1] / "waiters" / "ssm.json"

    @staticmethod
    def value_waiter_config(value: str) -> dict[str, Any]:
        """``config_overrides`` for the ``parameter_holds_value`` waiter: success once the
        parameter's value is ``value`` (the JSON file's acceptor is only a placeholder)."""
        return {
            "acceptors": [{"matcher": "path", "argument": "Parameter.Value", "expected": value, "state": "success"}]
        }

    def get(self, name: str, *, decrypt: bool = False) -> dict[str, Any] | None:
        """The parameter (Name, Type, Value, Version, DataType, ...) or None if absent.

        .. seealso:: SSM.Client.get_parameter
        """
        return aws_reads.get_parameter(self.conn, name, decrypt=decrypt)

    def parameters_under(self, path: str) -> dict[str, str]:
        """Every parameter under ``path``, recursively: name -> value.

        .. seealso:: SSM.Client.get_parameters_by_path
        """
        return aws_reads.parameters_under(self.conn, path)

    def require(self, name: str, *, decrypt: bool = False) -> dict[str, Any]:
        parameter = self.get(name, decrypt=decrypt)
        if parameter is None:
            raise AwsResourceNotFound("SSM parameter", name)
        return parameter

    def encryption_key_arn(self, name: str) -> str:
        """The ARN of the KMS key that encrypts SecureString ``name`` (its KeyId may be an
        alias, e.g. the default ``alias/aws/ssm``), for a policy scoped to that one key.

        .. seealso:: SSM.Client.describe_parameters, KMS.Client.describe_key
        """
        found = self.conn.describe_parameters(ParameterFilters=[{"Key": "Name", "Values": [name]}])["Parameters"]
        if not found:
            raise AwsResourceNotFound("SSM parameter", name)
        if found[0]["Type"] != "SecureString":
            raise ValueError(f"SSM parameter {name} is a {found[0]['Type']}, not a SecureString")
        kms = AwsBaseHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, client_type="kms").conn
        return kms.describe_key(KeyId=found[0].get("KeyId") or "alias/aws/ssm")["KeyMetadata"]["Arn"]

    def put(
        self,
        name: str,
        value: str,
        *,
        parameter_type: str = "String",
        data_type: str = "text",
        overwrite: bool = True,
        description: str | None = None,
    ) -> int:
        """Write a parameter; return the version AWS assigned. .. seealso:: SSM.Client.put_parameter"""
        kwargs: dict[str, Any] = {
            "Name": name,
            "Value": value,
            "Type": parameter_type,
            "DataType": data_type,
            "Overwrite": overwrite,
        }
        if description:
            kwargs["Description"] = description
        return self.conn.put_parameter(**kwargs)["Version"]

    def create(self, name: str, value: str) -> bool:
        """Write a String parameter only if it does not exist: False when it did (nothing
        written). SSM's one atomic conditional write. .. seealso:: SSM.Client.put_parameter"""
        try:
            self.put(name, value, overwrite=False)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ParameterAlreadyExists":
                return False
            raise
        return True

    def delete(self, name: str) -> bool:
        """Delete a parameter: False when there was none. .. seealso:: SSM.Client.delete_parameter"""
        try:
            self.conn.delete_parameter(Name=name)
        except ClientError as error:
            if error.response["Error"]["Code"] == "ParameterNotFound":
                return False
            raise
        return True

    def history(self, name: str, *, decrypt: bool = False) -> list[dict[str, Any]]:
        """Every stored version, oldest first. .. seealso:: SSM.Client.get_parameter_history"""
        paginator = self.conn.get_paginator("get_parameter_history")
        return [
            version for page in paginator.paginate(Name=name, WithDecryption=decrypt) for version in page["Parameters"]
        ]

    def add_tags(self, name: str, tags: dict[str, str]) -> None:
        """.. seealso:: SSM.Client.add_tags_to_resource"""
        if tags:
            self.conn.add_tags_to_resource(
                ResourceType="Parameter",
                ResourceId=name,
                Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
            )
