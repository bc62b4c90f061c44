"""AWS's own "not there" answers turned into None, and the paged reads, written once:
the domain (plain boto3 clients) and the hooks (``SsmParameterHook``, ``AmiHook``) both
read through these."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

#: DescribeImages' codes for an image id that names no image (it never existed, is not
#: an image id, or is no longer available to this account)
MISSING_IMAGE_CODES = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable")


def get_parameter(ssm: Any, name: str, *, decrypt: bool = False) -> dict[str, Any] | None:
    """The SSM parameter (Name, Type, Value, Version, DataType, ...), or None when it
    does not exist. .. seealso:: SSM.Client.get_parameter"""
    try:
        return ssm.get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def parameters_under(ssm: Any, path: str) -> dict[str, str]:
    """Every parameter under ``path`` (recursively, every page): name -> value.
    .. seealso:: SSM.Client.get_parameters_by_path"""
    pages = ssm.get_paginator("get_parameters_by_path").paginate(Path=path, Recursive=True)
    return {parameter["Name"]: parameter["Value"] for page in pages for parameter in page["Parameters"]}


def image_state(ec2: Any, image_id: str) -> str | None:
    """The AMI's state (``available``, ``deregistered``...), or None when there is no such image."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in MISSING_IMAGE_CODES:
            raise
        return None
    return images[0]["State"] if images else None
