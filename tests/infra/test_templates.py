"""The CloudFormation templates: cfn-lint and checkov pass (suppressions documented),
and what the emulator can't show is checked in the template text itself.

moto creates every resource type these templates use (the scaling policies and alarms
through the project's emulator layer), but it ignores some properties: an Auto Scaling
group's DefaultInstanceWarmup and MetricsCollection, a launch template's metadata
options and encrypted volumes at launch, a function's dead-letter queue and reserved
concurrency, and it can't invoke the function (that needs Docker). Those are checked
here, on the template.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from include.fleets import provision as fleet_provision
from include.fleets.config import FleetConfig
from include.naming.fleet import Fleet
from tests.conftest import REPO_ROOT

IAC_BIN = REPO_ROOT / ".venv" / "iac" / "bin"
TEMPLATES = [fleet_provision.SHARED_TEMPLATE, fleet_provision.FLEET_TEMPLATE]


def _tool(name: str) -> str:
    path = IAC_BIN / name
    assert path.exists(), f"{path} is missing: run `make venv` (it builds .venv/iac)"
    return str(path)


def _checkov(directory: Path) -> dict:
    completed = subprocess.run(
        [
            _tool("checkov"),
            "-d",
            str(directory),
            "--framework",
            "cloudformation",
            "--compact",
            "--skip-download",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(completed.stdout)
    return report[0] if isinstance(report, list) else report


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_passes(template):
    completed = subprocess.run([_tool("cfn-lint"), str(template)], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.fixture(scope="module")
def checkov_report():
    return _checkov(fleet_provision.SHARED_TEMPLATE.parent)


def test_checkov_passes_on_both_templates(checkov_report):
    failed = [(c["check_id"], c["resource"]) for c in checkov_report["results"]["failed_checks"]]
    assert failed == []
    assert checkov_report["summary"]["parsing_errors"] == 0
    assert checkov_report["summary"]["passed"] > 20


def test_every_checkov_suppression_gives_its_reason(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert skipped, "the templates document their suppressions"
    reasons = {c["check_id"]: c["check_result"].get("suppress_comment") or "" for c in skipped}
    assert [check for check, reason in reasons.items() if len(reason) < 30] == []


def test_checkov_really_reads_the_templates(tmp_path):
    """The same fleet template with IMDSv1 allowed must fail: the scan is not a no-op."""
    weakened = fleet_provision.FLEET_TEMPLATE.read_text().replace("HttpTokens: required", "HttpTokens: optional")
    (tmp_path / "gpu-fleet.yaml").write_text(weakened)

    failed = {c["check_id"] for c in _checkov(tmp_path)["results"]["failed_checks"]}

    assert "CKV_AWS_341" in failed or "CKV_AWS_79" in failed, failed


def test_the_fleet_stack_gets_every_parameter_it_declares_without_a_default(fleet_template):
    config = FleetConfig("sdxl-standard", ("g5.xlarge",), 2, 300, 2.0, 15)
    given = fleet_provision.fleet_stack_parameters(
        Fleet("staging", "gpu-default"),
        config,
        "arn:aws:sns:us-east-1:123456789012:topic",
        "arn:aws:kms:us-east-1:123456789012:key/k-1",
        {
            "warning": ["arn:aws:sns:us-east-1:123456789012:warn"],
            "critical": ["arn:aws:sns:us-east-1:123456789012:page"],
        },
    )
    declared = fleet_template["Parameters"]

    assert set(given) <= set(declared)
    assert {name for name, spec in declared.items() if "Default" not in spec} <= set(given)


def test_the_shared_stack_gets_every_parameter_it_declares_without_a_default(shared_template):
    given = fleet_provision.shared_stack_parameters("staging", "bucket", "key.zip", "vpc-0123456789abcdef0")
    declared = shared_template["Parameters"]
    assert {name for name, spec in declared.items() if "Default" not in spec} == set(given)


def test_the_group_is_spot_only_rebalancing_and_never_resets_its_capacity(fleet_template):
    group = fleet_template["Resources"]["Group"]["Properties"]

    assert "DesiredCapacity" not in group, "an update would reset the capacity the policies set"
    assert group["MinSize"] == "0"
    assert group["CapacityRebalance"] is True
    assert group["NewInstancesProtectedFromScaleIn"] is False
    assert group["DefaultInstanceWarmup"] == {"Ref": "WarmupSeconds"}
    distribution = group["MixedInstancesPolicy"]["InstancesDistribution"]
    assert distribution == {
        "OnDemandBaseCapacity": 0,
        "OnDemandPercentageAboveBaseCapacity": 0,
        "SpotAllocationStrategy": "price-capacity-optimized",
    }
    assert {"GroupDesiredCapacity"} <= set(group["MetricsCollection"][0]["Metrics"])


def test_instances_require_imdsv2_encrypted_volumes_and_resolve_the_ami_pointer(fleet_template):
    data = fleet_template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]

    assert data["MetadataOptions"]["HttpTokens"] == "required"
    assert all(m["Ebs"]["Encrypted"] is True for m in data["BlockDeviceMappings"])
    assert data["ImageId"] == {"Fn::Sub": "resolve:ssm:${AmiParameterName}"}
    user_data = data["UserData"]["Fn::Base64"]["Fn::Sub"]
    assert "systemctl restart bp-bundle-sync.service" in user_data  # the smart-skip bundle sync
    assert "python3" not in user_data, "the worker runs from its venv (seed 003, blocker 7)"


def test_the_scaling_contract_follows_adr_0005(fleet_template):
    resources = fleet_template["Resources"]
    dimensions = [{"Name": "FleetSlug", "Value": {"Ref": "FleetSlug"}}, {"Name": "Stage", "Value": {"Ref": "Stage"}}]

    tracking = resources["BacklogTracking"]["Properties"]["TargetTrackingConfiguration"]
    assert tracking["TargetValue"] == {"Ref": "BacklogTarget"}
    assert tracking["CustomizedMetricSpecification"]["Namespace"] == "ComfyUI/Workers"
    assert tracking["CustomizedMetricSpecification"]["Dimensions"] == dimensions

    empty = resources["QueueEmptyAlarm"]["Properties"]
    assert (empty["Namespace"], empty["MetricName"], empty["Dimensions"]) == (
        "ComfyUI/Workers",
        "QueueDepth",
        dimensions,
    )
    assert empty["EvaluationPeriods"] == {"Ref": "ScaleToZeroMinutes"}
    assert empty["AlarmActions"] == [{"Ref": "ScaleToZeroTopicArn"}]

    waiting = resources["JobsWaitingAtZeroAlarm"]["Properties"]
    assert waiting["AlarmActions"] == [{"Ref": "ScaleOutFromZero"}]
    assert resources["ScaleOutFromZero"]["Properties"]["StepAdjustments"] == [
        {"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}
    ]


def test_the_alarm_tiers_of_seed_004_and_the_idle_workers_alarm_of_seed_003(fleet_template):
    resources, parameters = fleet_template["Resources"], fleet_template["Parameters"]

    error_rate = resources["ErrorRateAlarm"]["Properties"]
    assert (error_rate["MetricName"], error_rate["Statistic"], error_rate["Period"]) == ("ErrorRate", "Average", 60)
    assert (error_rate["EvaluationPeriods"], error_rate["DatapointsToAlarm"]) == (5, 5)  # P2: 5 minutes
    assert error_rate["Threshold"] == {"Ref": "ErrorRateAlarmPercent"}
    assert parameters["ErrorRateAlarmPercent"]["Default"] == 20
    assert error_rate["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert error_rate["AlarmActions"] == {"Ref": "CriticalTopicArns"}

    deep = resources["QueueDeepAlarm"]["Properties"]
    assert (deep["MetricName"], deep["Statistic"]) == ("QueueDepth", "Minimum")  # held for the whole window
    assert deep["EvaluationPeriods"] == deep["DatapointsToAlarm"] == {"Ref": "QueueDeepMinutes"}
    assert (parameters["QueueDeepJobs"]["Default"], parameters["QueueDeepMinutes"]["Default"]) == (10, 30)
    assert deep["AlarmActions"] == {"Ref": "WarningTopicArns"}

    idle = resources["IdleWorkersAlarm"]["Properties"]
    expression = next(m for m in idle["Metrics"] if m.get("ReturnData"))["Expression"]
    assert expression == "IF(active > 0 AND queue == 0, 1, 0)"
    assert {m["MetricStat"]["Metric"]["MetricName"] for m in idle["Metrics"] if "MetricStat" in m} == {
        "QueueDepth",
        "ActiveWorkers",
    }
    assert idle["EvaluationPeriods"] == {"Ref": "IdleWorkersMinutes"}
    for alarm in (error_rate, deep, idle):
        assert alarm["TreatMissingData"] == "notBreaching"  # an idle fleet reports nothing


def test_the_function_is_wired_to_its_stages_topic_with_a_dead_letter_queue(shared_template):
    resources = shared_template["Resources"]
    topic = resources["ScaleToZeroTopic"]["Properties"]
    function = resources["ScaleToZeroFunction"]["Properties"]

    assert topic["TopicName"] == {"Fn::Sub": "bp-gpu-scale-to-zero-${Stage}"}
    assert topic["Subscription"] == [{"Protocol": "lambda", "Endpoint": {"Fn::GetAtt": ["ScaleToZeroFunction", "Arn"]}}]
    assert resources["TopicInvokesFunction"]["Properties"]["Principal"] == "sns.amazonaws.com"
    assert function["DeadLetterConfig"]["TargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert function["Handler"] == "handler.handle"
    assert (fleet_provision.FUNCTION_SOURCE / "handler.py").exists()


def test_log_groups_have_a_retention(shared_template, fleet_template):
    groups = [
        resource["Properties"]
        for template in (shared_template, fleet_template)
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Logs::LogGroup"
    ]
    assert len(groups) == 2
    assert all(group["RetentionInDays"] == {"Ref": "LogRetentionDays"} for group in groups)


def test_the_scale_out_permissions_are_scoped_to_the_stage(shared_template):
    statements = shared_template["Resources"]["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"][
        "Statement"
    ]
    scale = next(s for s in statements if s["Sid"] == "ScaleOnlyThisStagesFleets")

    assert scale["Condition"] == {"StringEquals": {"autoscaling:ResourceTag/stage": {"Ref": "Stage"}}}
    assert [s["Sid"] for s in statements if s["Resource"] == "*"] == ["FindFleetGroupsByTag"]


def test_the_function_package_is_reproducible_and_content_addressed(tmp_path):
    first, second = fleet_provision.function_package(), fleet_provision.function_package()
    assert first.body == second.body
    assert first.key == f"artifacts/lambda/scale-to-zero/{first.sha256}.zip"

    copy = tmp_path / "scale_to_zero"
    shutil.copytree(fleet_provision.FUNCTION_SOURCE, copy)
    (copy / "handler.py").write_text((copy / "handler.py").read_text() + "\n# changed\n")
    assert fleet_provision.function_package(copy).sha256 != first.sha256


def _statements(template: dict, role: str) -> list[dict]:
    properties = template["Resources"][role]["Properties"]
    return [s for policy in properties.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _wildcard_resources(statement: dict) -> list:
    """Resources of a statement that name no one thing: ``*`` or an ARN ending in ``/*`` that
    isn't under a path the template was given."""
    wild = []
    for resource in _listed(statement["Resource"]):
        text = resource if isinstance(resource, str) else json.dumps(resource)
        if text == "*" or text.endswith(("key/*", ":*", 'key/*"}')):
            wild.append(resource)
    return wild


def test_a_node_reads_only_its_own_parameters_and_decrypts_with_one_key(fleet_template):
    """A node must not read another stage's secret: no managed policy (AmazonSSMManagedInstanceCore
    grants ssm:GetParameter(s) on *), no ssm: or kms: action on a wildcard resource."""
    role = fleet_template["Resources"]["WorkerRole"]["Properties"]
    statements = _statements(fleet_template, "WorkerRole")

    assert "ManagedPolicyArns" not in role, "a managed policy's grants are outside this template's scoping"
    problems = [
        f"{statement['Sid']}: {action} on {_wildcard_resources(statement)}"
        for statement in statements
        for action in _listed(statement["Action"])
        if action.split(":")[0] in ("ssm", "kms") and _wildcard_resources(statement)
    ]
    assert problems == []
    decrypt = next(s for s in statements if "kms:Decrypt" in _listed(s["Action"]))
    assert decrypt["Resource"] == {"Ref": "FleetSecretKeyArn"}
    assert decrypt["Condition"]["StringEquals"]["kms:ViaService"] == {"Fn::Sub": "ssm.${AWS::Region}.amazonaws.com"}
    reads = next(s for s in statements if "ssm:GetParameter" in _listed(s["Action"]))
    assert [r["Fn::Sub"].rsplit(":parameter", 1)[1] for r in reads["Resource"]] == [
        "${FleetParameterPath}/*",
        "${ModelsBucketParameterName}",
        "${FleetSecretParameterName}",
    ]
    only_wildcards = [s["Sid"] for s in statements if s["Resource"] == "*"]
    assert only_wildcards == ["SsmAgentMessaging", "PublishTheFleetsMetricsOnly"]
    metrics = next(s for s in statements if s["Sid"] == "PublishTheFleetsMetricsOnly")
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": "ComfyUI/Workers"}}
    messaging = next(s for s in statements if s["Sid"] == "SsmAgentMessaging")
    assert {action.split(":")[0] for action in messaging["Action"]} == {"ssmmessages", "ec2messages"}


def test_the_node_policy_check_finds_the_managed_policy_and_a_wildcard_key(fleet_template):
    """The check above must fail on the policy as it was (it can fail)."""
    import copy

    weakened = copy.deepcopy(fleet_template)
    role = weakened["Resources"]["WorkerRole"]["Properties"]
    role["ManagedPolicyArns"] = ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    decrypt = next(s for s in _statements(weakened, "WorkerRole") if "kms:Decrypt" in _listed(s["Action"]))
    decrypt["Resource"] = {"Fn::Sub": "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*"}

    with pytest.raises(AssertionError):
        test_a_node_reads_only_its_own_parameters_and_decrypts_with_one_key(weakened)
    assert _wildcard_resources(decrypt)


def test_the_smoke_document_runs_every_check_and_its_python_as_the_service_users(shared_template):
    from include.amis import smoke

    commands = shared_template["Resources"]["AmiSmokeDocument"]["Properties"]["Content"]["mainSteps"][0]["inputs"][
        "runCommand"
    ]
    text = "\n".join(commands)

    for check in smoke.CHECKS:
        assert re.search(rf"check {check} ", text), check
    python = [line for line in text.splitlines() if "venv/bin/python" in line]
    assert python
    assert all("runuser -u " in line for line in python), python


def test_a_fleet_node_starts_its_agent_from_user_data_with_its_group(fleet_template):
    data = fleet_template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]
    script = data["Fn::Base64"]["Fn::Sub"]

    assert "BP_AUTO_SCALING_GROUP=asg-${Stage}-${FleetSlug}" in script
    assert script.rstrip().endswith("/opt/worker/bin/configure-node")


def test_every_leaving_node_goes_through_the_drain_hook_and_its_agent_may_complete_it(fleet_template):
    """The hook holds a terminating node for the agent's drain timeout and a minute more;
    the agent knows the hook's name and its own deadline, and may complete the action on
    its own group only."""
    resources = fleet_template["Resources"]
    hook = resources["DrainHook"]["Properties"]
    script = resources["LaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    statements = resources["WorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [complete] = [s for s in statements if "autoscaling:CompleteLifecycleAction" in s["Action"]]
    config = FleetConfig("sdxl-standard", ("g5.xlarge",), 2, 300, 2.0, 15, drain_timeout_seconds=600)
    parameters = fleet_provision.config_stack_parameters(config)

    assert (hook["LifecycleTransition"], hook["DefaultResult"]) == ("autoscaling:EC2_INSTANCE_TERMINATING", "CONTINUE")
    assert hook["AutoScalingGroupName"] == {"Ref": "Group"}
    assert hook["HeartbeatTimeout"] == {"Ref": "DrainHookTimeoutSeconds"}
    assert (parameters["DrainTimeoutSeconds"], parameters["DrainHookTimeoutSeconds"]) == ("600", "660")
    assert "BP_LIFECYCLE_HOOK=bp-drain-${Stage}-${FleetSlug}" in script
    assert hook["LifecycleHookName"] == {"Fn::Sub": "bp-drain-${Stage}-${FleetSlug}"}
    assert "BP_DRAIN_TIMEOUT_SECONDS=${DrainTimeoutSeconds}" in script
    assert complete["Resource"]["Fn::Sub"].endswith(":autoScalingGroupName/asg-${Stage}-${FleetSlug}")
