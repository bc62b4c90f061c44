"""Fixtures of the emulator's Auto Scaling tests."""

from __future__ import annotations

import pytest

GROUP = "asg-staging-gpu-default"


@pytest.fixture
def group(aws, seeded):
    ec2, autoscaling = aws("ec2"), aws("autoscaling")
    template = ec2.create_launch_template(
        LaunchTemplateName="bp-fleet-lt",
        LaunchTemplateData={"ImageId": seeded.base_ami_id, "InstanceType": "g4dn.xlarge"},
    )["LaunchTemplate"]["LaunchTemplateId"]
    autoscaling.create_auto_scaling_group(
        AutoScalingGroupName=GROUP,
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        VPCZoneIdentifier=seeded.private_subnet_ids[0],
    )
    image = ec2.register_image(Name="bp-gpu-v2", RootDeviceName="/dev/sda1", BlockDeviceMappings=[])["ImageId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"ImageId": image}
    )
    return {"template": template, "new_image": image, "old_image": seeded.base_ami_id}
