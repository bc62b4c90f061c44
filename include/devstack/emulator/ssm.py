"""``aws:ec2:image`` parameters for moto's SSM, which stores any value.

AWS (PutParameter, DataType): Systems Manager "validates the parameter value is in the
required format ... and that the specified AMI is available in your account", and
"The aws:ec2:image value is validated asynchronously ... If you submit an invalid AMI
value, the PutParameter operation will return success, but the asynchronous
validation will fail and the parameter will not be created or updated."

So: the call answers as if it worked (the next version number), and nothing changes.
Synchronous checks (a missing Overwrite on an existing parameter) still fail first.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

from moto.ec2.models import ec2_backends
from moto.ssm.exceptions import ParameterAlreadyExists
from moto.ssm.models import SimpleSystemManagerBackend

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


def install() -> None:
    SimpleSystemManagerBackend.put_parameter = put_parameter
