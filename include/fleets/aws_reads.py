"""The two reads both the preflight and the guardrails make of a fleet, with AWS's own
"not there" answers turned into None (plain boto3 clients, as :mod:`include.fleets`
domain code takes them)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

#: DescribeImages' codes for an image id that names no image
MISSING_IMAGE_CODES = ("InvalidAMIID.NotFound", "InvalidAMIID.Malformed")


def get_parameter(ssm: Any, name: str, *, decrypt: bool = False) -> dict[str, Any] | None:
    """The SSM parameter, or None when it does not exist."""
    try:
        return ssm.get_parameter(Name=name, WithDecryption=decrypt)["Parameter"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ParameterNotFound":
            return None
        raise


def image_state(ec2: Any, image_id: str) -> str | None:
    """The AMI's state (``available``, ``deregistered``...), or None when there is no such image."""
    try:
        images = ec2.describe_images(ImageIds=[image_id])["Images"]
    except ClientError as error:
        if error.response["Error"]["Code"] not in MISSING_IMAGE_CODES:
            raise
        return None
    return images[0]["State"] if images else None
