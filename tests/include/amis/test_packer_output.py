import json

import pytest

from include.amis import packer_output


def test_machine_readable_lines_are_parsed_with_escaped_commas():
    line = packer_output.parse_line(
        "1700000000,amazon-ebs.w,artifact,0,id,us-east-1:ami-1%!(PACKER_COMMA)eu-west-1:ami-2\n"
    )

    assert line == packer_output.Line(
        "1700000000", "amazon-ebs.w", "artifact", ("0", "id", "us-east-1:ami-1,eu-west-1:ami-2")
    )
    assert packer_output.artifact_ids([line]) == ["us-east-1:ami-1,eu-west-1:ami-2"]
    assert packer_output.ami_for_region("us-east-1:ami-1,eu-west-1:ami-2", "eu-west-1") == "ami-2"
    assert packer_output.ami_for_region("us-east-1:ami-1,eu-west-1:ami-2") == "ami-1"


def test_plain_text_is_not_a_machine_readable_line():
    assert packer_output.parse_line("Installed plugin github.com/hashicorp/amazon") is None
    assert packer_output.parse_line("") is None


def test_ui_lines_read_like_packer_does():
    line = packer_output.parse_line("1700000000,,ui,say,==> amazon-ebs.w: AMI: ami-1")

    assert line.human() == "[say] ==> amazon-ebs.w: AMI: ami-1"


def test_a_region_without_an_ami_is_an_error():
    with pytest.raises(ValueError, match="no AMI for region 'ap-south-1'"):
        packer_output.ami_for_region("us-east-1:ami-1", "ap-south-1")


def test_the_manifest_gives_the_last_build(tmp_path):
    manifest = tmp_path / "packer-manifest.json"
    manifest.write_text(
        json.dumps({"builds": [{"artifact_id": "us-east-1:ami-old"}, {"artifact_id": "us-east-1:ami-new"}]})
    )

    assert packer_output.manifest_artifact_id(manifest) == "us-east-1:ami-new"
