"""SSM behaviour moto lacks: ``aws:ec2:image`` validation, Run Command results,
ListCommandInvocations (moto raises NotImplementedError; the provider's Run Command
trigger starts with it), and documents created by CloudFormation.

``aws:ec2:image`` parameters: moto stores any value.

AWS (PutParameter, DataType): Systems Manager "validates the parameter value is in the
required format ... and that the specified AMI is available in your account", and
"The aws:ec2:image value is validated asynchronously ... If you submit an invalid AMI
value, the PutParameter operation will return success, but the asynchronous
validation will fail and the parameter will not be created or updated."

So: the call answers as if it worked (the next version number), and nothing changes.
Synchronous checks (a missing Overwrite on an existing parameter) still fail first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import yaml
from moto.core.responses import ActionResult
from moto.ec2.models import ec2_backends
from moto.ssm.exceptions import ParameterAlreadyExists, ValidationException
from moto.ssm.models import Document, SimpleSystemManagerBackend, ssm_backends
from moto.ssm.responses import SimpleSystemManagerResponse

AMI_ID = re.compile(r"^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$")

_original_put_parameter = SimpleSystemManagerBackend.put_parameter


def image_is_available(account_id: str, region: str, image_id: str) -> bool:
    if not AMI_ID.fullmatch(image_id or ""):
        return False
    image = ec2_backends[account_id][region].amis.get(image_id)
    return image is not None and image.state == "available"


def put_parameter(
    self: SimpleSystemManagerBackend,
    name: str,
    description: str,
    value: str,
    parameter_type: str,
    allowed_pattern: str,
    keyid: str,
    overwrite: bool,
    tags: list[dict[str, str]],
    data_type: str,
    tier: str | None,
    policies: str | None,
) -> Any:
    arguments = locals()
    del arguments["self"]
    if data_type != "aws:ec2:image" or image_is_available(self.account_id, self.region_name, value):
        return _original_put_parameter(self, **arguments)
    versions = self._parameters.get(name) or []
    if versions and not overwrite:
        raise ParameterAlreadyExists
    # Accepted now, rejected by the asynchronous validation: nothing is stored.
    latest = versions[-1] if versions else None
    return SimpleNamespace(
        version=(latest.version + 1) if latest else 1,
        tier=tier or (latest.tier if latest else self.default_parameter_tier),
    )


# --- Run Command results ---------------------------------------------------------
#
# moto answers every SendCommand with Success and empty output. AWS runs the document
# on each instance and reports per invocation a Status (Success, Failed, TimedOut,
# Cancelled...), a ResponseCode and the StandardOutputContent/StandardErrorContent
# (GetCommandInvocation). A test gives the emulator a program per document that
# computes that result from the instance and the command's parameters.


@dataclass(frozen=True)
class CommandResult:
    status: str = "Success"
    stdout: str = ""
    stderr: str = ""
    response_code: int = 0


CommandProgram = Callable[[str, dict[str, list[str]]], CommandResult]

_original_send_command = SimpleSystemManagerBackend.send_command


def _programs(backend: SimpleSystemManagerBackend) -> dict[str, CommandProgram]:
    if not hasattr(backend, "bp_command_programs"):
        backend.bp_command_programs = {}
    return backend.bp_command_programs


def program_command(
    document_name: str,
    program: CommandProgram,
    *,
    account_id: str = "123456789012",
    region: str = "us-east-1",
) -> None:
    """Run ``program(instance_id, parameters)`` for each instance a command of
    ``document_name`` targets; its result becomes that invocation's (tests only)."""
    _programs(ssm_backends[account_id][region])[document_name] = program


def apply_result(command: Any, instance_id: str, result: CommandResult) -> None:
    """Set one invocation's outcome and the command's aggregate status."""
    for invocation in command.invocations:
        if invocation["InstanceId"] == instance_id:
            invocation.update(
                {
                    "Status": result.status,
                    "StatusDetails": result.status,
                    "ResponseCode": result.response_code,
                    "StandardOutputContent": result.stdout,
                    "StandardErrorContent": result.stderr,
                }
            )
    statuses = [invocation["Status"] for invocation in command.invocations]
    command.error_count = sum(status != "Success" for status in statuses)
    command.status = "Success" if command.error_count == 0 else "Failed"
    command.status_details = command.status


#: AWS (SendCommand, InstanceIds): "Array Members: Minimum number of 0 items. Maximum
#: number of 50 items." moto takes any number.
SEND_COMMAND_MAX_INSTANCES = 50


def send_command(self: SimpleSystemManagerBackend, *args: Any, **kwargs: Any) -> Any:
    instance_ids = kwargs.get("instance_ids") or []
    if len(instance_ids) > SEND_COMMAND_MAX_INSTANCES:
        raise ValidationException(
            f"1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: "
            f"Member must have length less than or equal to {SEND_COMMAND_MAX_INSTANCES}"
        )
    command = _original_send_command(self, *args, **kwargs)
    program = _programs(self).get(command.document_name)
    if program is not None:
        for instance_id in command.instance_ids:
            apply_result(command, instance_id, program(instance_id, command.parameters))
    return command


_INVOCATION_FIELDS = (
    "CommandId",
    "InstanceId",
    "Comment",
    "DocumentName",
    "Status",
    "StatusDetails",
    "StandardOutputUrl",
)


def list_command_invocations(self: SimpleSystemManagerResponse) -> ActionResult:
    """ListCommandInvocations: "An invocation is copy of a command sent to a specific
    managed node", one per instance; CommandPlugins (with the output) only with Details."""
    command_id = self._get_param("CommandId")
    instance_id = self._get_param("InstanceId")
    commands = [self.ssm_backend.get_command_by_id(command_id)] if command_id else self.ssm_backend._commands
    invocations = []
    for command in commands:
        for invocation in command.invocations:
            if instance_id and invocation["InstanceId"] != instance_id:
                continue
            entry = {key: invocation[key] for key in _INVOCATION_FIELDS if key in invocation}
            entry["RequestedDateTime"] = command.requested_date_time.isoformat()
            if self._get_param("Details"):
                entry["CommandPlugins"] = [
                    {
                        "Name": invocation["PluginName"],
                        "Status": invocation["Status"],
                        "ResponseCode": invocation["ResponseCode"],
                        "Output": invocation["StandardOutputContent"],
                    }
                ]
            invocations.append(entry)
    return ActionResult({"CommandInvocations": invocations})


# --- documents created by CloudFormation -----------------------------------------
#
# AWS (AWS::SSM::Document, Content): "The content for the new SSM document in JSON or
# YAML." A template gives it as an object; SSM keeps it as text in the document's
# DocumentFormat, and DescribeDocument answers its Hash ("The Sha256 or Sha1 hash of the
# document content"). moto keeps the object, and DescribeDocument and GetDocument then
# fail with a server error (``'dict' object has no attribute 'encode'``).

_original_document_init = Document.__init__


def document_init(self: Document, *args: Any, **kwargs: Any) -> None:
    _original_document_init(self, *args, **kwargs)
    if isinstance(self.content, dict):
        as_json = self.document_format == "JSON"
        self.content = json.dumps(self.content) if as_json else yaml.safe_dump(self.content, sort_keys=False)


def install() -> None:
    Document.__init__ = document_init
    SimpleSystemManagerResponse.list_command_invocations = list_command_invocations
    SimpleSystemManagerBackend.put_parameter = put_parameter
    SimpleSystemManagerBackend.send_command = send_command
