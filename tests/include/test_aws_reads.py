"""The reads the domain and the hooks share (include/aws_reads.py), on moto in-process."""

from __future__ import annotations

from include import aws_reads


def test_every_page_of_a_path_is_read_and_nothing_beside_it(aws):
    ssm = aws("ssm")
    for index in range(23):  # GetParametersByPath answers at most 10 a page
        ssm.put_parameter(Name=f"/bp/devnodes/staging/n{index:02d}/owner", Value=f"o{index}", Type="String")
    ssm.put_parameter(Name="/bp/devnodes/production/n00/owner", Value="elsewhere", Type="String")

    found = aws_reads.parameters_under(ssm, "/bp/devnodes/staging")

    assert len(found) == 23
    assert found["/bp/devnodes/staging/n07/owner"] == "o7"
    assert "/bp/devnodes/production/n00/owner" not in found


def test_a_missing_parameter_or_image_is_none(aws):
    aws("ssm").put_parameter(Name="/bp/here", Value="v", Type="String")

    assert aws_reads.get_parameter(aws("ssm"), "/bp/nothing/here") is None
    assert aws_reads.get_parameter(aws("ssm"), "/bp/here")["Value"] == "v"
    assert aws_reads.image_state(aws("ec2"), "ami-0123456789abcdef0") is None
