"""Fixtures of the emulator's Auto Scaling tests."""

from __future__ import annotations

import pytest

from tests.conftest import two_node_group

GROUP = "asg-staging-gpu-default"


@pytest.fixture
def group(aws, seeded):
    ec2 = aws("ec2")
    template = two_node_group(aws, seeded, GROUP)
    image = ec2.register_image(Name="bp-gpu-v2", RootDeviceName="/dev/sda1", BlockDeviceMappings=[])["ImageId"]
    ec2.create_launch_template_version(
        LaunchTemplateId=template, SourceVersion="1", LaunchTemplateData={"ImageId": image}
    )
    return {"template": template, "new_image": image, "old_image": seeded.base_ami_id}
