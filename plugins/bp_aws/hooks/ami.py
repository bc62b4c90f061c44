"""EC2 image (AMI) hook: describe, tag, deregister, and find what still uses an image."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

from airflow.providers.amazon.aws.hooks.ec2 import EC2Hook
from botocore.exceptions import ClientError

from bp_aws.exceptions import AwsResourceNotFound
from include.aws_reads import MISSING_IMAGE_CODES


class AmiHook(EC2Hook):
    """Interact with AMIs through a boto3 ``ec2`` client.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.ec2.EC2Hook` (its client API)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["api_type"] = "client_type"
        super().__init__(*args, **kwargs)

    @cached_property
    def waiter_path(self) -> Path:
        """``image_settled`` also fails on invalid/deregistered/missing images (botocore's
        ``image_available`` would keep waiting)."""
        return Path(__file__).parents[1] / "waiters" / "ec2.json"

    def describe_image(self, image_id: str) -> dict[str, Any]:
        """.. seealso:: EC2.Client.describe_images"""
        try:
            images = self.conn.describe_images(ImageIds=[image_id])["Images"]
        except ClientError as error:
            if error.response["Error"]["Code"] in MISSING_IMAGE_CODES:
                raise AwsResourceNotFound("AMI", image_id, error.response["Error"]["Message"]) from None
            raise
        if not images:
            raise AwsResourceNotFound("AMI", image_id)
        return images[0]

    def images_tagged(self, tags: dict[str, str]) -> list[dict[str, Any]]:
        """This account's images carrying every tag given."""
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
        return self.images_of("self", filters)

    def images_of(self, owner: str, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The images ``owner`` (an account id, or ``self``) publishes that match ``filters``.
        .. seealso:: EC2.Client.describe_images"""
        return self.conn.describe_images(Owners=[owner], Filters=filters)["Images"]

    def tag_image(self, image_id: str, tags: dict[str, str], *, with_snapshots: bool = True) -> list[str]:
        """Tag an image (and its EBS snapshots); return the resources tagged.

        .. seealso:: EC2.Client.create_tags
        """
        image = self.describe_image(image_id)
        resources = [image_id]
        if with_snapshots:
            resources += [
                m["Ebs"]["SnapshotId"]
                for m in image.get("BlockDeviceMappings", [])
                if m.get("Ebs", {}).get("SnapshotId")
            ]
        self.conn.create_tags(Resources=resources, Tags=[{"Key": k, "Value": str(v)} for k, v in tags.items()])
        return resources

    def deregister(self, image_id: str, snapshot_ids: list[str] | tuple[str, ...]) -> None:
        """Deregister the image, then delete its snapshots.

        .. seealso:: EC2.Client.deregister_image, EC2.Client.delete_snapshot
        """
        self.conn.deregister_image(ImageId=image_id)
        for snapshot_id in snapshot_ids:
            self.conn.delete_snapshot(SnapshotId=snapshot_id)

    def images_in_launch_templates(self) -> dict[str, str]:
        """Image id -> "launch template <name> v<version>" for every version that names an AMI."""
        used: dict[str, str] = {}
        for page in self.conn.get_paginator("describe_launch_templates").paginate():
            for template in page["LaunchTemplates"]:
                versions = self.conn.describe_launch_template_versions(LaunchTemplateId=template["LaunchTemplateId"])
                for version in versions["LaunchTemplateVersions"]:
                    image_id = version.get("LaunchTemplateData", {}).get("ImageId", "")
                    if image_id.startswith("ami-"):
                        used.setdefault(
                            image_id, f"launch template {template['LaunchTemplateName']} v{version['VersionNumber']}"
                        )
        return used

    def images_of_instances(self) -> dict[str, str]:
        """Image id -> "instance <id>" for every instance that is not terminated."""
        used: dict[str, str] = {}
        states = ["pending", "running", "stopping", "stopped", "shutting-down"]
        paginator = self.conn.get_paginator("describe_instances")
        for page in paginator.paginate(Filters=[{"Name": "instance-state-name", "Values": states}]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    used.setdefault(instance["ImageId"], f"instance {instance['InstanceId']}")
        return used

    def launch_template_image(self, template_id: str, version: str) -> str | None:
        """The ImageId of a launch template version, as written (``resolve:ssm:...`` stays).

        .. seealso:: EC2.Client.describe_launch_template_versions
        """
        versions = self.conn.describe_launch_template_versions(LaunchTemplateId=template_id, Versions=[version])
        return versions["LaunchTemplateVersions"][0]["LaunchTemplateData"].get("ImageId")
