"""The real Airflow services (api-server, scheduler, dag-processor, triggerer) and the
moto server on loopback, driven only through the REST API and the CI client."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from devstack.stack import REPO_ROOT
from include.cli.airflow_client import AirflowApiError
from include.naming import platform

pytestmark = pytest.mark.e2e

STAGING_FLEET = {"fleet_stage": "staging", "fleet_slug": "gpu-default"}


def _cli(stack, *args, password=None):
    env = dict(
        os.environ,
        AIRFLOW_API_URL=stack.api_url,
        AIRFLOW_USERNAME="admin",
        AIRFLOW_PASSWORD=password or stack.admin_password(),
    )
    return subprocess.run(
        [sys.executable, "-m", "include.cli.trigger", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_preflight_runs_green_and_its_task_log_is_read_through_the_api(client):
    run = client.trigger("platform_preflight", STAGING_FLEET)
    assert run.conf == STAGING_FLEET

    run = client.wait_for_run("platform_preflight", run.run_id, timeout=240, poll=1)

    assert run.state == "success"
    lines = list(client.task_log_lines("platform_preflight", run.run_id, "check_deploy_blockers", 1))
    assert any("Preflight summary: 6 ok, 0 warning, 0 critical" in line for line in lines), lines
    assert any("ami pointer" in line and "/bp/ami/fleets/staging/gpu-default" in line for line in lines)


def test_a_conf_that_breaks_a_param_schema_is_refused_before_any_task_runs(client):
    with pytest.raises(AirflowApiError) as refused:
        client.trigger("platform_preflight", {"fleet_slug": "Bad Slug; rm -rf /"})

    assert refused.value.status == 400
    assert "does not match" in str(refused.value)


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


def test_the_ci_client_reports_wrong_credentials_in_one_line(stack, client):
    result = _cli(stack, "platform_preflight", password="not-the-password")

    assert result.returncode == 3
    assert result.stderr == f"error: the api-server at {stack.api_url} refused the credentials of user 'admin'\n"
