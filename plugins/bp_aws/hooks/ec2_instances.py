"""EC2 instances the DAGs launch themselves (an AMI smoke test), found again by their tags."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

#: every state but terminated: an instance in one of them may still cost money
LIVE_STATES = ("pending", "running", "stopping", "stopped", "shutting-down")


class Ec2InstanceHook(AwsBaseHook):
    """Launch, find and terminate instances through a boto3 ``ec2`` client.

    Status waits use botocore's own ``instance_status_ok`` waiter.

    .. seealso:: :class:`airflow.providers.amazon.aws.hooks.base_aws.AwsBaseHook`
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["client_type"] = "ec2"
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
    ) -> str:
        """One instance with no public address, IMDSv2 only, an encrypted root volume
        that goes with it, and ``tags`` on the instance and its volume; its id.

        .. seealso:: EC2.Client.run_instances
        """
        tag_list = [{"Key": key, "Value": value} for key, value in tags.items()]
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
            InstanceInitiatedShutdownBehavior="terminate",
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
