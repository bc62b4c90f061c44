"""The real Airflow services (api-server, scheduler, dag-processor, triggerer) and the
moto server on loopback, driven only through the REST API and the CI client."""

from __future__ import annotations

import pytest

from include.cli.airflow_client import AirflowApiError
from include.naming import platform
from tests.e2e.helpers import cli

pytestmark = [pytest.mark.e2e, pytest.mark.services]

STAGING_FLEET = {"fleet_stage": "staging", "fleet_slug": "gpu-default"}


def _cli(stack, *args, password=None):
    return cli(stack, *args, password=password)


def test_preflight_runs_green_and_its_task_log_is_read_through_the_api(client):
    run = client.trigger("platform_preflight", STAGING_FLEET)
    assert run.conf == STAGING_FLEET

    run = client.wait_for_run("platform_preflight", run.run_id, timeout=240)

    assert run.state == "success"
    lines = list(client.task_log_lines("platform_preflight", run.run_id, "check_deploy_blockers", 1))
    assert any("Preflight summary: 8 ok, 0 warning, 0 critical" in line for line in lines), lines
    assert any("ami pointer" in line and "/bp/ami/fleets/staging/gpu-default" in line for line in lines)


def test_a_conf_that_breaks_a_param_schema_is_refused_before_any_task_runs(client):
    with pytest.raises(AirflowApiError) as refused:
        client.trigger("platform_preflight", {"fleet_slug": "Bad Slug; rm -rf /"})

    assert refused.value.status == 400
    # the api-server's own answer is one line (the UI's trigger dialog prints it as it is),
    # and the client raises it as it is: the CLI says whether it was the conf or the run id
    assert str(refused.value) == (
        "Invalid input for param fleet_slug: 'Bad Slug; rm -rf /' does not match the pattern "
        "^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$ (Only check this fleet, e.g. `gpu-default` (empty: every fleet).)"
    )


def test_the_ci_client_triggers_waits_and_reports_success(stack, client):
    result = _cli(stack, "platform_preflight", "--conf", '{"fleet_stage": "staging"}', "--wait", "--poll", "1")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "final state: success" in result.stdout


def test_the_ci_client_prints_the_failing_task_log_and_exits_1(stack, client):
    ssm = stack.aws_client()("ssm")
    name = platform.fleet_secret("staging")
    previous = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.put_parameter(Name=name, Value=platform.UNSET_FLEET_SECRET, Type="SecureString", Overwrite=True)
    try:
        result = _cli(stack, "platform_preflight", "--conf", '{"fleet_stage": "staging"}', "--wait", "--poll", "1")
    finally:
        ssm.put_parameter(Name=name, Value=previous, Type="SecureString", Overwrite=True)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "final state: failed" in result.stdout
    assert "----- log of check_deploy_blockers (try 1, failed) -----" in result.stdout
    assert (
        "1 deploy blocker(s) found: fleet secret /bp/fleets/staging/fleet-secret: "
        "still the deploy placeholder CHANGE_ME_AFTER_DEPLOY"
    ) in result.stdout
    assert previous not in result.stdout


def test_the_ci_client_names_an_unknown_dag(stack, client):
    result = _cli(stack, "no_such_dag", "--wait")

    assert result.returncode == 2
    assert result.stderr == f"error: DAG 'no_such_dag' does not exist on {stack.api_url}\n"

    misspelt = _cli(stack, "weekly_reveiw_pack", "--wait")
    assert misspelt.returncode == 2
    assert misspelt.stderr == (
        f"error: DAG 'weekly_reveiw_pack' does not exist on {stack.api_url} (did you mean 'weekly_review_pack'?)\n"
    )


def test_the_ci_client_reports_wrong_credentials_in_one_line(stack, client):
    result = _cli(stack, "platform_preflight", password="not-the-password")

    assert result.returncode == 3
    assert result.stderr == f"error: the api-server at {stack.api_url} refused the credentials of user 'admin'\n"


def test_a_misspelt_conf_key_is_refused_by_the_client_in_one_line(stack, client):
    result = _cli(stack, "platform_preflight", "--conf", '{"flet_stage": "staging"}')

    assert result.returncode == 2
    assert result.stderr.startswith("error: DAG 'platform_preflight' refused the conf: unknown conf key(s) ")
    assert "'flet_stage' (did you mean 'fleet_stage'?)" in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_schema_refusal_is_one_line_naming_the_param(stack, client):
    result = _cli(stack, "platform_preflight", "--conf", '{"fleet_slug": "Bad Slug"}')

    assert result.returncode == 2
    assert result.stderr.startswith("error: DAG 'platform_preflight' refused the conf: param fleet_slug: 'Bad Slug'")
    assert result.stderr.count("\n") == 1


def test_a_reused_run_id_is_named_with_the_existing_run(stack, client):
    first = _cli(stack, "platform_preflight", "--run-id", "ci-build-42")
    again = _cli(stack, "platform_preflight", "--run-id", "ci-build-42")

    assert first.returncode == 0
    assert again.returncode == 2
    assert again.stderr.startswith("error: run 'ci-build-42' of platform_preflight already exists (")
    assert "choose another --run-id" in again.stderr


def test_the_ci_client_lists_runs_and_reads_any_tasks_log(stack, client):
    triggered = _cli(stack, "platform_preflight", "--conf", '{"fleet_stage": "staging"}', "--wait", "--poll", "1")
    run_id = triggered.stdout.split(" run ", 1)[1].split(" ", 1)[0]

    listed = _cli(stack, "runs", "platform_preflight", "--limit", "3")
    logged = _cli(stack, "logs", "platform_preflight", run_id, "check_deploy_blockers")

    assert triggered.returncode == 0
    assert f"the run: {stack.api_url}/dags/platform_preflight/runs/" in triggered.stdout
    assert "check_deploy_blockers:\n  Preflight findings:" in triggered.stdout  # what the run found, not raw XCom
    assert "  Preflight summary: " in triggered.stdout
    assert listed.returncode == 0
    assert listed.stdout.splitlines()[0].split() == ["RUN", "ID", "STATE", "STARTED", "DURATION"]
    assert any(line.startswith(run_id) and " success " in line for line in listed.stdout.splitlines())
    assert logged.returncode == 0
    assert "----- log of check_deploy_blockers (try 1, success) -----" in logged.stdout
    assert "Preflight summary:" in logged.stdout
