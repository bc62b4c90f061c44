"""EC2 instances the DAGs launch themselves (an AMI smoke test, a dev node), found again
by their tags, and the security groups of dev nodes."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.ec2 import EC2Hook

#: every state but terminated: an instance in one of them may still cost money
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")
#: The root volume of an instance launched here (the image's own size when larger): room
#: for ComfyUI, its venv and a bundle's models, as the fleets' launch template gives them.
ROOT_VOLUME_GIB = 150


class Ec2InstanceHook(EC2Hook):
    """Launch, find and terminate instances through a boto3 ``ec2`` client.

    Status waits use botocore's own ``instance_status_ok`` waiter.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.ec2.EC2Hook` (its client API)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["api_type"] = "client_type"
        super().__init__(*args, **kwargs)

    def instances_tagged(self, tags: dict[str, str], states: tuple[str, ...] = LIVE_STATES) -> list[dict[str, Any]]:
        """Instances carrying every tag given, in one of ``states``.

        .. seealso:: EC2.Client.describe_instances
        """
        filters = [{"Name": f"tag:{key}", "Values": [value]} for key, value in tags.items()]
        filters.append({"Name": "instance-state-name", "Values": list(states)})
        return [
            instance
            for page in self.conn.get_paginator("describe_instances").paginate(Filters=filters)
            for reservation in page["Reservations"]
            for instance in reservation["Instances"]
        ]

    def launch_instance(
        self,
        *,
        image_id: str,
        instance_type: str,
        subnet_id: str,
        security_group_id: str,
        instance_profile: str,
        tags: dict[str, str],
        shutdown_behavior: str = "terminate",
        user_data: str | None = None,
    ) -> str:
        """One instance with no public address, IMDSv2 only, an encrypted root volume
        that goes with it, and ``tags`` on the instance and its volume; its id.
        ``shutdown_behavior``: what a shutdown from inside does (``stop`` for a dev node,
        which keeps its disk between sessions); ``user_data``: the script cloud-init runs
        at first boot (boto3 encodes it).

        .. seealso:: EC2.Client.run_instances
        """
        tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
        image = self.conn.describe_images(ImageIds=[image_id])["Images"][0]
        root_device = image.get("RootDeviceName", "/dev/xvda")
        root_size = next(
            (
                m["Ebs"].get("VolumeSize")
                for m in image.get("BlockDeviceMappings", [])
                if m["DeviceName"] == root_device
            ),
            None,
        )
        answer = self.conn.run_instances(
            ImageId=image_id,
            InstanceType=instance_type,
            MinCount=1,
            MaxCount=1,
            IamInstanceProfile={"Name": instance_profile},
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet_id,
                    "Groups": [security_group_id],
                    "AssociatePublicIpAddress": False,
                }
            ],
            MetadataOptions={"HttpTokens": "required", "HttpEndpoint": "enabled", "HttpPutResponseHopLimit": 1},
            BlockDeviceMappings=[
                {
                    "DeviceName": root_device,
                    "Ebs": {
                        "VolumeSize": max(root_size or 0, ROOT_VOLUME_GIB),
                        "VolumeType": "gp3",
                        "Encrypted": True,
                        "DeleteOnTermination": True,
                    },
                }
            ],
            InstanceInitiatedShutdownBehavior=shutdown_behavior,
            **({"UserData": user_data} if user_data else {}),
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        )
        return answer["Instances"][0]["InstanceId"]

    def terminate(self, instance_ids: list[str]) -> list[str]:
        """Terminate the instances (terminating one already gone is not an error).

        .. seealso:: EC2.Client.terminate_instances
        """
        if not instance_ids:
            return []
        answer = self.conn.terminate_instances(InstanceIds=instance_ids)
        return [change["InstanceId"] for change in answer["TerminatingInstances"]]

    def describe_instance(self, instance_id: str) -> dict[str, Any] | None:
        """The instance, or None when EC2 does not know it (any more).

        .. seealso:: EC2.Client.describe_instances
        """
        from botocore.exceptions import ClientError

        try:
            reservations = self.conn.describe_instances(InstanceIds=[instance_id])["Reservations"]
        except ClientError as error:
            if error.response["Error"]["Code"] in ("InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"):
                return None
            raise
        found = [instance for reservation in reservations for instance in reservation["Instances"]]
        return found[0] if found else None

    def start(self, instance_id: str) -> None:
        """.. seealso:: EC2.Client.start_instances"""
        self.conn.start_instances(InstanceIds=[instance_id])

    def stop(self, instance_id: str) -> None:
        """.. seealso:: EC2.Client.stop_instances"""
        self.conn.stop_instances(InstanceIds=[instance_id])

    def reboot(self, instance_id: str) -> None:
        """.. seealso:: EC2.Client.reboot_instances"""
        self.conn.reboot_instances(InstanceIds=[instance_id])

    def ensure_security_group(self, name: str, vpc_id: str, description: str, tags: dict[str, str]) -> str:
        """The group named ``name`` in the VPC, created with no inbound rule when missing
        (a retry finds the one it made); its id.

        .. seealso:: EC2.Client.create_security_group
        """
        found = self.conn.describe_security_groups(
            Filters=[{"Name": "group-name", "Values": [name]}, {"Name": "vpc-id", "Values": [vpc_id]}]
        )["SecurityGroups"]
        if found:
            return found[0]["GroupId"]
        return self.conn.create_security_group(
            GroupName=name,
            Description=description,
            VpcId=vpc_id,
            TagSpecifications=[
                {"ResourceType": "security-group", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ],
        )["GroupId"]

    def delete_security_group(self, name: str) -> bool:
        """Delete the group named ``name`` (once no instance uses it); False when absent.

        .. seealso:: EC2.Client.delete_security_group
        """
        found = self.conn.describe_security_groups(Filters=[{"Name": "group-name", "Values": [name]}])["SecurityGroups"]
        for group in found:
            self.conn.delete_security_group(GroupId=group["GroupId"])
        return bool(found)
