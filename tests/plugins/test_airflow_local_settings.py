"""plugins/airflow_local_settings.py: the processes that call AWS share one botocore data
loader, and those that fork task processes parse the tasks' AWS models before they fork,
without a credential lookup or a request; other commands are left as they are."""

from __future__ import annotations

import json
import subprocess
import sys

import boto3

from tests.conftest import REPO_ROOT

#: ``airflow <command>`` as Airflow starts it, then what the local settings left behind
_STARTED_AS = """
import json, sys
sys.argv = ["/venv/bin/airflow", sys.argv[1]]
import botocore.credentials

def refuse(*args, **kwargs):
    raise AssertionError("the local settings looked up AWS credentials")

botocore.credentials.create_credential_resolver = refuse
import airflow_local_settings
import botocore.session

loader = getattr(botocore.session.Session, "_bp_shared_data_loader", None)
parsed = sorted({key[1] for key in getattr(loader, "_cache", {}) if key[0] == "load_service_model"})
print(json.dumps({"shared": loader is not None, "parsed": parsed}))
"""


def _started_as(command: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", _STARTED_AS, command],
        cwd=REPO_ROOT / "plugins",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_session_of_a_process_gets_the_one_loader():
    from airflow_local_settings import share_botocore_data_loader

    loader = share_botocore_data_loader()

    first, second = boto3.session.Session(), boto3.session.Session()
    assert first._session.get_component("data_loader") is loader
    assert second._session.get_component("data_loader") is loader
    assert share_botocore_data_loader() is loader  # a second call changes nothing


def test_a_scheduler_parses_the_tasks_models_before_it_forks_and_sends_nothing():
    started = _started_as("scheduler")

    assert started["shared"] is True
    assert {"ec2", "s3", "ssm", "autoscaling", "cloudformation", "cloudwatch", "ce"} <= set(started["parsed"])


def test_the_triggerer_shares_the_loader_without_parsing_ahead():
    assert _started_as("triggerer") == {"shared": True, "parsed": []}


def test_the_dag_processor_and_other_commands_are_left_alone():
    for command in ("dag-processor", "db"):
        assert _started_as(command) == {"shared": False, "parsed": []}, command
