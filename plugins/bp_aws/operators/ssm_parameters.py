"""Write an SSM parameter with an optimistic version check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.log import mask_secret
from botocore.exceptions import WaiterError

from bp_aws.base import AwsOperator, aws_template_fields
from bp_aws.exceptions import ParameterVersionConflict, ParameterWriteRejected
from bp_aws.utils.waiting import optional_int, poll_attempts


class PutSsmParameterOperator(AwsOperator):
    """Write an SSM parameter, but only over the version the caller read.

    Two runs that both read version N of a pointer and then write it can't silently
    overwrite each other: a write is refused when the current version is not
    ``expected_version``, and a write that lands on anything but N+1 (someone wrote in
    between) fails and names the other writer. SSM has no conditional write, so the
    check is read-then-write; the post-write check closes the window in the sense that
    the loser always knows.

    An ``aws:ec2:image`` write is read back: AWS validates those asynchronously and
    drops an invalid AMI after answering 200.

    Re-running the task after it succeeded is a no-op: a parameter that already holds
    ``value`` is not written again.

    .. seealso:: SSM.Client.put_parameter

    :param name: the parameter. (templated)
    :param value: the new value. (templated; masked in logs for SecureString)
    :param expected_version: the version the caller read: an int, ``0`` for "must not
        exist yet", or None for no check. (templated)
    :param parameter_type: String, StringList or SecureString.
    :param data_type: ``text`` or ``aws:ec2:image``.
    :param tags: tags for the parameter (added on every write). (templated)
    :param description: the parameter's description. (templated)
    :param image_validation_timeout: seconds to wait for AWS to apply an aws:ec2:image value.
    :return: ``{"name", "version", "previous_version", "previous_value", "changed"}``; the
        previous value is left out (None) for a SecureString.
    """

    aws_hook_path = "bp_aws.hooks.ssm_parameters.SsmParameterHook"
    template_fields: Sequence[str] = aws_template_fields("name", "value", "expected_version", "tags", "description")

    def __init__(
        self,
        *,
        name: str,
        value: str,
        expected_version: int | str | None = None,
        parameter_type: str = "String",
        data_type: str = "text",
        tags: dict[str, str] | None = None,
        description: str | None = None,
        image_validation_timeout: float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if parameter_type not in ("String", "StringList", "SecureString"):
            raise ValueError(f"parameter_type must be String, StringList or SecureString, not {parameter_type!r}")
        if data_type not in ("text", "aws:ec2:image"):
            raise ValueError(f"data_type must be text or aws:ec2:image, not {data_type!r}")
        self.name = name
        self.value = value
        self.expected_version = expected_version
        self.parameter_type = parameter_type
        self.data_type = data_type
        self.tags = tags or {}
        self.description = description
        self.image_validation_timeout = image_validation_timeout

    @property
    def _secure(self) -> bool:
        return self.parameter_type == "SecureString"

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Mask a SecureString's value as soon as it is rendered: Airflow stores and shows
        the rendered fields (Rendered Templates) right after this, before execute()."""
        super().render_template_fields(context, jinja_env)
        if self._secure:
            mask_secret(self.value, self.name)

    def execute(self, context: Any) -> dict[str, Any]:
        if self._secure:  # again: an operator may be executed without being rendered
            mask_secret(self.value, self.name)
        expected = optional_int(self.expected_version)
        current = self.hook.get(self.name, decrypt=self._secure)
        if current and self._secure:
            mask_secret(current["Value"], self.name)
        current_version = current["Version"] if current else 0

        if current and current["Value"] == self.value:
            self.log.info("%s already holds the value (version %s): nothing to write", self.name, current_version)
            previous_version = expected if expected is not None else current_version
            return self._result(current_version, previous_version, changed=False)
        if expected is not None and current_version != expected:
            raise ParameterVersionConflict(
                f"{self.name} changed since it was read: expected version {expected}, found "
                f"{current_version or 'no parameter'}{self._modified_by(current_version)}. Nothing was written; "
                "read it again and decide."
            )

        version = self.hook.put(
            self.name,
            self.value,
            parameter_type=self.parameter_type,
            data_type=self.data_type,
            overwrite=current is not None,
            description=self.description,
        )
        if version != current_version + 1:
            raise ParameterVersionConflict(
                f"{self.name} was written by someone else while this task wrote it: this write became version "
                f"{version}, not {current_version + 1}{self._modified_by(current_version + 1)}. Check which value "
                "must win before going on."
            )
        self.hook.add_tags(self.name, self.tags)
        if self.data_type == "aws:ec2:image":
            self._wait_for_image_validation(version, current)
        shown = "***" if self._secure else self.value
        self.log.info("%s: version %s -> %s, value %s", self.name, current_version, version, shown)
        return self._result(version, current_version, changed=True, previous=current)

    def _result(
        self, version: int, previous_version: int, *, changed: bool, previous: dict | None = None
    ) -> dict[str, Any]:
        previous_value = None
        if not self._secure and previous_version:
            if previous is not None and previous["Version"] == previous_version:
                previous_value = previous["Value"]
            else:
                previous_value = next(
                    (v["Value"] for v in self.hook.history(self.name) if v["Version"] == previous_version), None
                )
        return {
            "name": self.name,
            "version": version,
            "previous_version": previous_version,
            "previous_value": previous_value,
            "changed": changed,
        }

    def _modified_by(self, version: int) -> str:
        entry = next((v for v in self.hook.history(self.name) if v["Version"] == version), None)
        if not entry:
            return ""
        who, when = entry.get("LastModifiedUser", "unknown"), entry.get("LastModifiedDate")
        return f" (version {version} written by {who} at {when})"

    def _wait_for_image_validation(self, version: int, previous: dict | None) -> None:
        """AWS validates an ``aws:ec2:image`` value after answering the write: wait until
        the parameter reads back as written, or say that AWS dropped it."""
        waiter = self.hook.get_waiter(
            "parameter_holds_value", config_overrides=self.hook.value_waiter_config(self.value)
        )
        try:
            waiter.wait(
                Name=self.name,
                WaiterConfig={"Delay": 1, "MaxAttempts": poll_attempts(self.image_validation_timeout, 1)},
            )
        except WaiterError:
            still = f"still holds {previous['Value']} (version {previous['Version']})" if previous else "does not exist"
            raise ParameterWriteRejected(
                f"AWS accepted {self.value} for {self.name} (version {version}) but its asynchronous aws:ec2:image "
                f"validation rejected it (the image must exist and be available in this account and region); "
                f"the parameter {still}."
            ) from None
