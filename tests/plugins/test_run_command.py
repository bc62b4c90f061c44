"""Run Command on more nodes than one SendCommand may name (50, which the emulator
enforces as AWS does): the hook sends batches and collects every node's answer."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bp_aws.hooks.run_command import SEND_COMMAND_MAX_INSTANCES, RunCommandHook

DOCUMENT = "bp-test-status"


@pytest.fixture
def nodes(aws_http, baseline):
    ec2, ssm = aws_http("ec2"), aws_http("ssm")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instances = ec2.run_instances(ImageId=image, MinCount=60, MaxCount=60, InstanceType="g4dn.xlarge")["Instances"]
    ssm.create_document(
        Name=DOCUMENT,
        DocumentType="Command",
        Content='{"schemaVersion": "2.2", "description": "status", "mainSteps": '
        '[{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}',
    )
    return sorted(i["InstanceId"] for i in instances)


def test_a_single_send_command_is_refused_above_50_instances(aws_http, nodes):
    with pytest.raises(ClientError, match="less than or equal to 50"):
        aws_http("ssm").send_command(DocumentName=DOCUMENT, InstanceIds=nodes)


def test_the_hook_sends_batches_of_50_and_collects_every_answer(aws_http, nodes):
    hook = RunCommandHook(aws_conn_id="aws_default")
    sent: list[int] = []
    hook.conn.meta.events.register(
        "provide-client-params.ssm.SendCommand", lambda params, **_: sent.append(len(params["InstanceIds"]))
    )

    answers = hook.run_and_collect(DOCUMENT, nodes, delay=1, max_attempts=5)

    assert sent == [SEND_COMMAND_MAX_INSTANCES, 10]
    assert sorted(answers) == nodes
    assert {answer["Status"] for answer in answers.values()} == {"Success"}
