import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from bp_aws.exceptions import PackerBuildFailed
from bp_aws.operators.packer import PACKER_ENVIRONMENT, PackerBuildOperator

DOUBLE = Path(__file__).resolve().parents[2] / "doubles" / "packer"


@pytest.fixture
def packer_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PACKER_DOUBLE_PYTHON", sys.executable)
    monkeypatch.setenv("AIRFLOW__BP__PACKER_BINARY", str(DOUBLE))
    (tmp_path / "comfyui-worker.pkr.hcl").write_text("# template\n")
    return tmp_path


def _build(workdir, **kwargs):
    variables = kwargs.pop("variables", {"fleet_stage": "staging", "fleet_slug": "gpu-default", "bundle_id": "b-1"})
    return PackerBuildOperator(task_id="packer", working_dir=str(workdir), variables=variables, **kwargs)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_build_returns_the_ami_and_streams_packer_output(aws_http, baseline, packer_env, capsys):
    result = _build(packer_env).execute({})

    image = aws_http("ec2").describe_images(ImageIds=[result["ami_id"]])["Images"][0]
    assert result["artifact_id"] == f"us-east-1:{result['ami_id']}"
    assert {t["Key"]: t["Value"] for t in image["Tags"]} == {
        "fleet_stage": "staging",
        "fleet_slug": "gpu-default",
        "bundle_id": "b-1",
    }
    log = capsys.readouterr().out
    assert "[say] ==> amazon-ebs.comfyui-worker: AMI: " + result["ami_id"] in log
    assert "Installed plugin github.com/hashicorp/amazon" in log


def test_without_a_manifest_the_artifact_line_names_the_ami(aws_http, baseline, packer_env):
    result = _build(packer_env, manifest_file=None).execute({})

    assert result["ami_id"].startswith("ami-")
    aws_http("ec2").describe_images(ImageIds=[result["ami_id"]])


def test_variables_are_data_never_shell(aws_http, baseline, packer_env, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"$(touch {marker}); `touch {marker}` && rm -rf /"

    result = _build(packer_env, variables={"fleet_slug": "gpu-default", "bundle_id": evil}).execute({})

    assert not marker.exists()
    image = aws_http("ec2").describe_images(ImageIds=[result["ami_id"]])["Images"][0]
    assert {t["Key"]: t["Value"] for t in image["Tags"]}["bundle_id"] == evil


def test_packer_gets_the_connections_aws_identity_and_none_of_the_workers_secrets(
    aws_http, baseline, packer_env, monkeypatch, tmp_path
):
    dump = tmp_path / "env.json"
    monkeypatch.setenv("PACKER_DOUBLE_ENV_DUMP", str(dump))
    secrets = {
        "AIRFLOW__CORE__FERNET_KEY": "fernet",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql://airflow:pw@db/airflow",
        "AIRFLOW__API_AUTH__JWT_SECRET": "jwt",
        "AIRFLOW_CONN_WAREHOUSE": "mysql://u:pw@h/db",
        "GITHUB_TOKEN": "ghp_x",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)

    _build(packer_env).execute({})

    seen = set(json.loads(dump.read_text()))
    assert seen & set(secrets) == set()
    assert {"PATH", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "PACKER_DOUBLE_PYTHON"} <= seen
    set_by_the_doubles_shell = {"SHLVL", "PWD", "_", "OLDPWD"}
    extra = seen - set(PACKER_ENVIRONMENT) - set_by_the_doubles_shell
    assert [n for n in extra if not n.startswith(("AWS_", "PACKER_", "CHECKPOINT_"))] == []


def test_a_failed_build_says_why(aws_http, baseline, packer_env, monkeypatch):
    monkeypatch.setenv("PACKER_DOUBLE_FAIL", "UnauthorizedOperation: not allowed to RunInstances")

    with pytest.raises(PackerBuildFailed, match=r"packer build exited with code 1: .*UnauthorizedOperation"):
        _build(packer_env).execute({})


def test_a_missing_binary_is_one_clear_line(aws_http, baseline, packer_env):
    with pytest.raises(PackerBuildFailed) as missing:
        _build(packer_env, packer_binary="/opt/nowhere/packer").execute({})

    assert str(missing.value) == (
        "packer binary '/opt/nowhere/packer' not found: install Packer or set [bp] packer_binary "
        "(AIRFLOW__BP__PACKER_BINARY)"
    )


def test_a_build_past_its_timeout_is_killed_with_its_children(aws_http, baseline, packer_env, monkeypatch):
    pidfile = packer_env / "pids"
    monkeypatch.setenv("PACKER_DOUBLE_SLEEP", "60")
    monkeypatch.setenv("PACKER_DOUBLE_PIDFILE", str(pidfile))
    started = time.monotonic()

    with pytest.raises(PackerBuildFailed, match="did not finish within 2s and was killed"):
        _build(packer_env, build_timeout=2).execute({})

    assert time.monotonic() - started < 30
    assert not any(_alive(int(pid)) for pid in pidfile.read_text().split())


def test_on_kill_stops_the_whole_process_group(aws_http, baseline, packer_env, monkeypatch):
    pidfile = packer_env / "pids"
    monkeypatch.setenv("PACKER_DOUBLE_SLEEP", "60")
    monkeypatch.setenv("PACKER_DOUBLE_PIDFILE", str(pidfile))
    operator = _build(packer_env)
    errors: list[Exception] = []

    def run():
        try:
            operator.execute({})
        except Exception as error:
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 30
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    operator.on_kill()
    worker.join(timeout=30)

    assert not worker.is_alive()
    assert errors
    assert isinstance(errors[0], PackerBuildFailed)
    assert not any(_alive(int(pid)) for pid in pidfile.read_text().split())
