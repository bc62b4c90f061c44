"""gpu_fleet_provision end to end: the real Airflow services and CloudFormation on the
emulator. Each test provisions its own fleet, written into SSM as the admin UI would."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse

import pytest

from devstack.stack import REPO_ROOT
from include.cli.airflow_client import AirflowApiError
from include.naming import platform
from include.naming.fleet import Fleet
from tests.e2e.helpers import answer, awaiting, cli, cli_env, log

pytestmark = [pytest.mark.e2e, pytest.mark.services]

DAG = "gpu_fleet_provision"
CONFIG = {"template_slug": "sdxl-standard", "instance_types": ["g4dn.xlarge", "g5.xlarge"], "max_size": 2}


@pytest.fixture
def admin_ui(stack):
    """Writes fleets into SSM as the admin UI does; removes them (and their stacks and
    leftovers) afterwards, so the session's other end-to-end tests see the baseline."""
    aws = stack.aws_client()
    ssm = aws("ssm")
    fleets: list[tuple[str, str]] = []

    def create_fleet(slug: str, config: dict | str, *, with_ami: bool = True, stage: str = "staging") -> None:
        fleets.append((stage, slug))
        value = config if isinstance(config, str) else json.dumps(config)
        ssm.put_parameter(Name=Fleet(stage, slug).desired_config, Value=value, Type="String", Overwrite=True)
        if with_ami:
            image = ssm.get_parameter(Name=Fleet("staging", "gpu-default").ami_pointer)["Parameter"]["Value"]
            ssm.put_parameter(
                Name=Fleet(stage, slug).ami_pointer,
                Value=image,
                Type="String",
                DataType="aws:ec2:image",
                Overwrite=True,
            )

    yield create_fleet
    for stage, slug in fleets:
        names = [Fleet(stage, slug).desired_config, Fleet(stage, slug).ami_pointer]
        ssm.delete_parameters(Names=names)
        stack_name = Fleet(stage, slug).fleet_stack
        if _stack(aws, stack_name):
            aws("cloudformation").delete_stack(StackName=stack_name)
        for group in aws("logs").describe_log_groups(logGroupNamePrefix=f"/gpu-workers/{stage}/{slug}")["logGroups"]:
            aws("logs").delete_log_group(logGroupName=group["logGroupName"])


def _run(client, slug: str, action: str = "apply", **conf):
    run = client.trigger(DAG, {"fleet_stage": "staging", "fleet_slug": slug, "action": action, **conf})
    return client.wait_for_run(DAG, run.run_id, timeout=300)


def _approve(client, run, task_id: str, choice: str = "Approve", by=None) -> None:
    answer(client, DAG, run, task_id, choice, by)


def _states(client, run) -> dict[str, str]:
    return {ti["task_id"]: ti["state"] for ti in client.task_instances(DAG, run.run_id)}


def _log(client, run, task_id: str) -> str:
    return log(client, DAG, run, task_id)


def _stack(aws, name: str) -> dict | None:
    stacks = aws("cloudformation").list_stacks()["StackSummaries"]
    live = [s for s in stacks if s["StackName"] == name and s["StackStatus"] != "DELETE_COMPLETE"]
    return live[0] if live else None


def _group(aws, slug: str) -> dict:
    name = Fleet("staging", slug).auto_scaling_group
    return aws("autoscaling").describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def test_apply_creates_then_updates_then_is_a_no_op_then_destroy_needs_zero_and_approval(stack, client, admin_ui):
    aws = stack.aws_client()
    slug = "e2e-lifecycle"
    fleet_stack = Fleet("staging", slug).fleet_stack
    admin_ui(slug, CONFIG)

    created = _run(client, slug)
    assert created.state == "success", _states(client, created)
    assert _stack(aws, fleet_stack)["StackStatus"] == "CREATE_COMPLETE"
    assert _stack(aws, platform.shared_stack("staging"))["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE")
    outputs = client.xcom(DAG, created.run_id, "deploy_fleet_stack")
    assert outputs["AutoScalingGroupName"] == Fleet("staging", slug).auto_scaling_group
    assert outputs["QueueEmptyAlarmName"] == f"staging-{slug}-queue-empty"
    assert client.xcom(DAG, created.run_id, "verify_fleet")["verified"] is True
    assert _group(aws, slug)["MaxSize"] == 2
    assert "Add     Group" in _log(client, created, "deploy_fleet_stack")

    admin_ui(slug, {**CONFIG, "max_size": 3})
    updated = _run(client, slug)
    assert updated.state == "success", _states(client, updated)
    assert _stack(aws, fleet_stack)["StackStatus"] == "UPDATE_COMPLETE"
    assert _group(aws, slug)["MaxSize"] == 3
    assert "Modify  Group" in _log(client, updated, "deploy_fleet_stack")

    unchanged = _run(client, slug)
    assert unchanged.state == "success", _states(client, unchanged)
    assert "is already up to date" in _log(client, unchanged, "deploy_fleet_stack")
    assert "is already up to date" in _log(client, unchanged, "deploy_shared_stack")

    autoscaling = aws("autoscaling")
    autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["AutoScalingGroupName"], DesiredCapacity=1)
    refused = _run(client, slug, "destroy")
    assert refused.state == "failed"
    assert _states(client, refused)["check_fleet_idle"] == "failed"
    assert "is not at 0 (desired capacity is 1; 1 instance(s) still in the group" in _log(
        client, refused, "check_fleet_idle"
    )
    assert _stack(aws, fleet_stack) is not None

    autoscaling.set_desired_capacity(AutoScalingGroupName=outputs["AutoScalingGroupName"], DesiredCapacity=0)
    run = client.trigger(DAG, {"fleet_stage": "staging", "fleet_slug": slug, "action": "destroy"})
    _approve(client, run, "approve_destroy")
    assert _stack(aws, fleet_stack) is not None  # nothing was deleted before the approval
    destroyed = client.wait_for_run(DAG, run.run_id, timeout=240)
    assert destroyed.state == "success", _states(client, destroyed)
    assert _stack(aws, fleet_stack) is None
    assert (
        autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[outputs["AutoScalingGroupName"]])[
            "AutoScalingGroups"
        ]
        == []
    )


def test_a_production_apply_deploys_only_on_a_listed_second_persons_recorded_approve(
    stack, client, ci, approver, admin_ui
):
    """CI triggers; neither the admin's answer, nor CI's or the admin's "Mark success" of the
    approval, deploys anything; the listed approver's Approve does."""
    aws = stack.aws_client()
    slug = "e2e-production"
    admin_ui(slug, CONFIG, stage="production")
    conf = {"fleet_stage": "production", "fleet_slug": slug, "action": "apply"}

    rejected = ci.trigger(DAG, conf)
    awaiting(ci, DAG, rejected, "approve_apply")
    with pytest.raises(AirflowApiError) as not_theirs:  # the admin is not a production approver
        client.respond(DAG, rejected.run_id, "approve_apply", ["Approve"])
    assert not_theirs.value.status == 403
    _approve(client, rejected, "approve_apply", "Reject", by=approver)
    rejected = client.wait_for_run(DAG, rejected.run_id, timeout=300)
    assert rejected.state == "failed"  # a rejected change is not a successful run
    assert "Rejected by approver (id " in _log(client, rejected, "approve_apply")
    assert "the fleet's stacks were not deployed. Nothing was changed." in _log(client, rejected, "approve_apply")
    assert _stack(aws, platform.shared_stack("production")) is None

    marked = ci.trigger(DAG, conf)
    awaiting(ci, DAG, marked, "approve_apply")
    with pytest.raises(AirflowApiError) as ci_may_not:  # the CI role never edits a task instance
        ci.mark_task(DAG, marked.run_id, "approve_apply", "success")
    assert ci_may_not.value.status == 403
    client.mark_task(DAG, marked.run_id, "approve_apply", "success")  # an admin may: it approves nothing
    marked = client.wait_for_run(DAG, marked.run_id, timeout=300)
    states = _states(client, marked)
    assert marked.state == "failed", states
    assert (states["approve_apply"], states["deploy_shared_stack"]) == ("success", "failed")
    assert states["deploy_fleet_stack"] == "upstream_failed"
    refusal = _log(client, marked, "deploy_shared_stack")
    assert "deploy_shared_stack refused: nobody answered approve_apply (an approval marked success" in refusal
    assert "Nothing was changed." in refusal
    assert _stack(aws, platform.shared_stack("production")) is None
    assert _stack(aws, Fleet("production", slug).fleet_stack) is None

    # CI triggers and waits; the client says what it waits for; the approver answers from a shell
    waiting = subprocess.Popen(
        [sys.executable, "-m", "include.cli.trigger", DAG, "--conf", json.dumps(conf), "--wait", "--poll", "1"],
        cwd=REPO_ROOT,
        env=cli_env(stack, "ci"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = iter(waiting.stdout.readline, "")
    said = next(line for line in lines if line.startswith("waiting for approval on approve_apply ("))
    run_id = urllib.parse.unquote(said.split("/runs/", 1)[1].split("/", 1)[0])
    answered = cli(stack, "approve", DAG, run_id, "approve_apply", user="approver")  # at once: the CLI settles
    rest = "".join(lines)
    assert answered.returncode == 0, answered.stderr
    assert waiting.wait(timeout=300) == 0, rest + waiting.stderr.read()
    assert "final state: success" in rest
    assert f"  Fleet production/{slug} is deployed: stacks " in rest
    run = client.get_run(DAG, run_id)

    assert run.state == "success", _states(client, run)
    assert "Approved by approver (id " in _log(client, run, "deploy_fleet_stack")
    assert _stack(aws, Fleet("production", slug).fleet_stack)["StackStatus"] == "CREATE_COMPLETE"
    assert client.xcom(DAG, run.run_id, "deploy_shared_stack")["ScaleToZeroTopicArn"].endswith(
        ":bp-gpu-scale-to-zero-production"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ('{"template_slug": "sdxl-standard",', "is not valid JSON"),
        ({**CONFIG, "template_slug": "sdxl-mega"}, "template_slug 'sdxl-mega' is not a fleet template"),
        ({**CONFIG, "instance_types": ["p5.48xlarge"]}, "instance type p5.48xlarge is not allowed by template"),
        ({**CONFIG, "max_size": 50}, "max_size 50 is out of bounds for template sdxl-standard (1..10)"),
    ],
    ids=["malformed-json", "unknown-template", "type-not-allowed", "max-size-out-of-bounds"],
)
def test_a_bad_desired_config_fails_with_one_message_before_any_stack_call(stack, client, admin_ui, config, message):
    aws = stack.aws_client()
    slug = "e2e-bad-config"
    admin_ui(slug, config)

    run = _run(client, slug)

    states = _states(client, run)
    assert run.state == "failed"
    assert states["read_desired_config"] == "failed"
    assert states["deploy_fleet_stack"] == "upstream_failed"
    assert message in _log(client, run, "read_desired_config")
    assert _stack(aws, Fleet("staging", slug).fleet_stack) is None


def test_a_fleet_without_an_ami_pointer_names_the_ami_dag(stack, client, admin_ui):
    aws = stack.aws_client()
    slug = "e2e-no-ami"
    admin_ui(slug, CONFIG, with_ami=False)

    run = _run(client, slug)

    assert run.state == "failed"
    assert _states(client, run)["check_ami_pointer"] == "failed"
    log = _log(client, run, "check_ami_pointer")
    assert "run the gpu_ami_build_and_bake DAG with fleet_stage=staging, fleet_slug=e2e-no-ami, mode=base" in log
    assert _stack(aws, Fleet("staging", slug).fleet_stack) is None


def test_a_stack_that_rolls_back_fails_the_run_with_its_events(stack, client, admin_ui):
    aws = stack.aws_client()
    slug = "e2e-rollback"
    admin_ui(slug, CONFIG)
    # A log group left behind by hand: AWS refuses to create a second one by that name.
    aws("logs").create_log_group(logGroupName=f"/gpu-workers/staging/{slug}")

    run = _run(client, slug)

    assert run.state == "failed"
    assert _states(client, run)["deploy_fleet_stack"] == "failed"
    log = _log(client, run, "deploy_fleet_stack")
    assert "deployment ended ROLLBACK_COMPLETE: WorkerLogGroup CREATE_FAILED" in log
    assert "CloudFormation rolled the create back" in log
    assert _stack(aws, Fleet("staging", slug).fleet_stack)["StackStatus"] == "ROLLBACK_COMPLETE"


def test_a_missing_desired_config_is_waited_for_then_refused(client):
    run = _run(client, "e2e-never-created", config_wait_minutes=0)

    assert run.state == "failed"
    assert _states(client, run)["wait_for_desired_config"] == "failed"
    name = Fleet("staging", "e2e-never-created").desired_config
    log = _log(client, run, "wait_for_desired_config")
    assert f"SSM parameter {name} did not meet the condition after 1 poll(s)" in log
    assert "Create the fleet in the admin UI (it writes desired_config)" in log


def test_bad_params_are_refused_by_the_schema(client):
    with pytest.raises(AirflowApiError) as refused:
        client.trigger(DAG, {"fleet_stage": "staging", "fleet_slug": "gpu-default", "action": "recreate"})
    assert refused.value.status == 400
