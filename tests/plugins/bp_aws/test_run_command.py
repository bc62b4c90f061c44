"""Run Command on more nodes than one SendCommand may name (50, which the emulator
enforces as AWS does): the hook sends batches and collects every node's answer. And the
operator that runs a long document on one node (a dev node's bundle install), deferred."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from bp_aws.exceptions import CommandFailed
from bp_aws.hooks.run_command import SEND_COMMAND_MAX_INSTANCES, RunCommandHook
from bp_aws.operators.run_command import RunCommandOperator
from include.naming import platform
from tests.doubles import gpu_node
from tests.plugins.conftest import resume

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


@pytest.fixture
def dev_node(aws_http, baseline, monkeypatch):
    """One instance, the stage's bundle apply document (its installer: tests/doubles/gpu_node)
    and an SSM pointer naming a bundle prefix whose manifest is not uploaded yet."""
    monkeypatch.setenv("AIRFLOW__BP__TRIGGER_FIRST_POLL_DELAY", "0")
    gpu_node.install()
    ec2, ssm = aws_http("ec2"), aws_http("ssm")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    [instance] = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="g5.xlarge")["Instances"]
    ssm.create_document(
        Name=platform.bundle_apply_document("staging"),
        DocumentType="Command",
        Content='{"schemaVersion": "2.2", "description": "apply", "mainSteps": '
        '[{"action": "aws:runShellScript", "name": "s", "inputs": {"runCommand": ["true"]}}]}',
    )
    ssm.put_parameter(Name=POINTER, Value="bundles/b-run", Type="String", Overwrite=True)
    return instance["InstanceId"]


POINTER = "/bp/devnodes/staging/alice/active_bundle"


def _apply(instance_id: str, deferrable: bool = True) -> str:
    operator = RunCommandOperator(
        task_id="apply",
        document_name=platform.bundle_apply_document("staging"),
        run_command_kwargs={
            "InstanceIds": [instance_id],
            "Parameters": {"bucketParameter": [platform.models_bucket_parameter()], "prefixParameter": [POINTER]},
        },
        deferrable=deferrable,
        waiter_delay=1,
        waiter_max_attempts=10,
    )
    return resume(operator) if deferrable else operator.execute({})


@pytest.mark.parametrize("deferrable", [True, False])
def test_the_operator_waits_for_the_command_and_returns_its_id(aws_http, baseline, dev_node, deferrable):
    aws_http("s3").put_object(Bucket=baseline.models_bucket, Key="bundles/b-run/manifest.json", Body=b'{"assets": []}')

    command_id = _apply(dev_node, deferrable)

    invocation = aws_http("ssm").get_command_invocation(CommandId=command_id, InstanceId=dev_node)
    assert invocation["Status"] == "Success"
    assert gpu_node.installed(dev_node) == "bundles/b-run"


def test_a_failed_command_fails_the_task_with_what_the_node_printed(dev_node):
    with pytest.raises(CommandFailed, match=r"ended Failed .*manifest.json does not exist; nothing was changed"):
        _apply(dev_node)


def test_the_operator_runs_on_exactly_one_instance(dev_node):
    with pytest.raises(ValueError, match="exactly one instance"):
        RunCommandOperator(task_id="apply", document_name="d", run_command_kwargs={"InstanceIds": []}).execute({})
