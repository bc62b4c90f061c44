"""The amazon provider's ``AwsBaseOperator`` / ``AwsBaseSensor`` contract, with the hook
imported when a task first uses it.

The provider's bases import ``base_aws`` and with it boto3 and s3transfer: about 150 ms
that every DAG file using one paid at each parse (the dag-processor parses every file
every 30 s), twice the rest of a typical file. These bases keep what a task's author
and a DAG's reader rely on - ``aws_conn_id``, ``region_name``, ``verify``,
``botocore_config``, the same templated fields, a ``hook`` built from the class's hook
with those settings - and name the hook by its import path instead of its class.
Modules that derive from them import hooks and triggers inside the methods that run
(``tests/test_layout.py`` checks that no DAG file imports boto3 when parsed). The two
bases each define their own ``__init__``: Airflow fills ``default_args`` (``aws_conn_id``
among them) only into an ``__init__`` a class defines itself.
"""

from __future__ import annotations

from functools import cache, cached_property
from typing import Any

from airflow.sdk import BaseOperator, BaseSensorOperator
from airflow.sdk.module_loading import import_string


@cache
def aws_template_fields(*template_fields: str) -> tuple[str, ...]:
    """The connection's templated fields and ``template_fields``, sorted (as the provider's)."""
    return tuple(sorted({"aws_conn_id", "region_name", "verify"} | set(template_fields)))


class _AwsHookOwner:
    #: the hook's import path, e.g. ``"bp_aws.hooks.ami.AmiHook"``: imported at first use
    aws_hook_path: str

    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None

    def _connect(
        self,
        aws_conn_id: str | None,
        region_name: str | None,
        verify: bool | str | None,
        botocore_config: dict[str, Any] | None,
    ) -> None:
        if not getattr(type(self), "aws_hook_path", None):
            raise AttributeError(f"Class attribute '{type(self).__name__}.aws_hook_path' should be set.")
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @cached_property
    def hook(self) -> Any:
        """The task's hook, built from its connection settings (the provider's ``hook``)."""
        return self.hook_for(self.aws_hook_path)

    def hook_for(self, hook_path: str) -> Any:
        """Another service's hook (by import path) on the same connection as :attr:`hook`."""
        hook_class = import_string(hook_path)
        return hook_class(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.botocore_config
        )


class AwsOperator(_AwsHookOwner, BaseOperator):
    """``AwsBaseOperator`` without the provider at parse time (see the module's docstring)."""

    template_fields = aws_template_fields()

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._connect(aws_conn_id, region_name, verify, botocore_config)


class AwsSensor(_AwsHookOwner, BaseSensorOperator):
    """``AwsBaseSensor`` without the provider at parse time (see the module's docstring)."""

    template_fields = aws_template_fields()

    def __init__(
        self,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._connect(aws_conn_id, region_name, verify, botocore_config)
