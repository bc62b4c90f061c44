"""The Packer templates parse (python-hcl2) and say what the image must be; every
provisioning script passes shellcheck."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from gpu_worker.agent.drain import DEFAULT_DRAIN_FILE
from include.naming import platform
from include.naming.fleet import SLUG_MAX_LENGTH, SLUG_PATTERN
from tests.doubles.fake_packer import PROVENANCE

PACKER = Path(__file__).resolve().parents[2] / "packer"
SCRIPTS = sorted((PACKER / "scripts").glob("*.sh"))


def _unquote(value):
    """python-hcl2 keeps HCL's quotes on string literals."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _load(name: str) -> dict:
    with (PACKER / name).open() as handle:
        return hcl2.load(handle)


@pytest.fixture(scope="module")
def template():
    return _load("comfyui-worker.pkr.hcl")


@pytest.fixture(scope="module")
def variables():
    return {_unquote(name): body for block in _load("variables.pkr.hcl")["variable"] for name, body in block.items()}


def test_variables_cover_what_the_dag_passes_and_validate_stage_and_slug(variables):
    assert set(variables) >= {
        "aws_region", "fleet_stage", "fleet_slug", "instance_type", "source_ami", "iam_instance_profile",
        "models_s3_bucket", "models_s3_prefix", "bundle_id", "git_sha", "airflow_run_id",
    }  # fmt: skip
    assert "default" not in variables["fleet_stage"]
    assert "default" not in variables["fleet_slug"]
    stage_rule = variables["fleet_stage"]["validation"][0]["condition"]
    assert all(f'\\"{stage}\\"' in stage_rule or f'"{stage}"' in stage_rule for stage in platform.STAGES)
    slug_rule = variables["fleet_slug"]["validation"][0]["condition"]
    # the same pattern as the DAG's param and ssm_paths
    assert SLUG_PATTERN in slug_rule.replace('\\"', '"')
    assert str(SLUG_MAX_LENGTH) in slug_rule
    assert _unquote(variables["models_s3_prefix"]["default"]) == platform.NO_ACTIVE_BUNDLE


def test_the_amazon_plugin_is_pinned_to_one_version(template):
    [plugins] = template["packer"][0]["required_plugins"]
    assert _unquote(plugins["amazon"]["source"]) == "github.com/hashicorp/amazon"
    assert re.fullmatch(r"= \d+\.\d+\.\d+", _unquote(plugins["amazon"]["version"]))  # packer init fetches exactly it


def test_the_build_instance_is_private_and_reached_through_session_manager(template):
    source = template["source"][0]['"amazon-ebs"']['"comfyui-worker"']
    assert source["subnet_id"] == "${var.subnet_id}"
    assert source["security_group_ids"] == ["${var.security_group_id}"]  # no temporary group open to 0.0.0.0/0
    assert source["associate_public_ip_address"] is False
    assert _unquote(source["ssh_interface"]) == "session_manager"
    assert not {"temporary_security_group_source_cidrs", "temporary_security_group_source_public_ip"} & set(source)


def test_the_base_source_is_ubuntu_2204_from_canonical(template):
    ubuntu = template["data"][0]['"amazon-ami"']['"ubuntu_2204"']
    assert _unquote(ubuntu["filters"]["name"]).startswith("ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-")
    assert [_unquote(o) for o in ubuntu["owners"]] == ["099720109477"]
    source = template["source"][0]['"amazon-ebs"']['"comfyui-worker"']
    # a bake starts from the fleet's current AMI, a base build from Ubuntu
    assert source["source_ami"] == '${var.source_ami != "" ? var.source_ami : data.amazon-ami.ubuntu_2204.id}'


def test_imdsv2_encryption_and_provenance_tags(template):
    source = template["source"][0]['"amazon-ebs"']['"comfyui-worker"']
    assert _unquote(source["imds_support"]) == "v2.0"
    assert _unquote(source["metadata_options"][0]["http_tokens"]) == "required"
    assert source["encrypt_boot"] is True
    assert source["launch_block_device_mappings"][0]["encrypted"] is True
    assert source["tags"] == source["snapshot_tags"] == "${local.provenance}"
    provenance = {_unquote(key) for key in template["locals"][0]["provenance"]}
    assert provenance >= set(PROVENANCE)  # the test double tags what the template tags


def test_provisioners_install_drivers_comfyui_the_worker_venv_then_the_bundle(template):
    [build] = template["build"]
    steps = [(kind, body) for step in build["provisioner"] for kind, body in step.items()]
    scripts = [
        Path(_unquote(body["script"]).replace("${path.root}", str(PACKER))).name
        for kind, body in steps
        if _unquote(kind) == "shell"
    ]
    assert scripts == [
        "install-nvidia-drivers.sh",
        "install-comfyui.sh",
        "install-python-worker.sh",
        "install-node-agent.sh",  # after the package it runs and ComfyUI's user, before the bake
        "apply-bundle.sh",
    ]
    assert all((PACKER / "scripts" / name).is_file() for name in scripts)
    # the worker package is uploaded before the script that installs it
    upload = next(i for i, (kind, _) in enumerate(steps) if _unquote(kind) == "file")
    install = next(i for i, (_, body) in enumerate(steps) if "install-python-worker.sh" in body.get("script", ""))
    assert _unquote(steps[upload][1]["source"]) == "${path.root}/../gpu_worker/"
    assert upload < install
    [manifest] = build["post-processor"]
    assert _unquote(manifest['"manifest"']["output"]) == "packer-manifest.json"


def test_the_worker_runs_from_its_venv_never_the_system_python():
    worker = (PACKER / "scripts" / "install-python-worker.sh").read_text()
    bake = (PACKER / "scripts" / "apply-bundle.sh").read_text()
    assert 'python3 -m venv "$VENV"' in worker
    assert "ExecStart=/opt/worker/venv/bin/python -m gpu_worker.bundle apply" in worker
    assert "/opt/worker/venv/bin/python -m gpu_worker.bundle apply" in bake
    for script in SCRIPTS:
        # python3 only ever creates a venv
        assert re.findall(r"(?<![/\w])python3 (?!-m venv)", script.read_text()) == [], script.name


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_scripts_are_strict_and_shellcheck_clean(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    shellcheck = shutil.which("shellcheck") or str(Path(sys.executable).parent / "shellcheck")
    result = subprocess.run(
        [shellcheck, "--severity=style", script.name], cwd=script.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_node_agent_is_baked_as_a_unit_of_its_own_user_and_started_by_configure_node():
    installer = (PACKER / "scripts" / "install-node-agent.sh").read_text()

    assert "User=bp-agent" in installer
    assert "ExecStart=/opt/worker/venv/bin/python -m gpu_worker.agent --env-file /etc/bp/worker.env" in installer
    assert "gpg --batch --verify" in installer  # the CloudWatch agent's package is checked before dpkg -i
    assert "cloudwatch-agent-config --env-file /etc/bp/worker.env" in installer
    # the drain file's folder (gpu_worker.agent.drain.DEFAULT_DRAIN_FILE), the agent's own
    assert "RuntimeDirectory=bp-agent" in installer
    assert DEFAULT_DRAIN_FILE.startswith("/run/bp-agent/")


def test_code_and_venvs_are_roots_and_the_service_user_owns_only_its_data():
    comfyui = (PACKER / "scripts" / "install-comfyui.sh").read_text()
    worker = (PACKER / "scripts" / "install-python-worker.sh").read_text()

    assert 'chown -R comfyui:comfyui "$COMFYUI_ROOT"' not in comfyui
    assert 'chown -R root:root "$COMFYUI_ROOT"' in comfyui
    assert re.search(r"for data in output input temp user; do\n  install -d -m 0750 -o comfyui", comfyui)
    assert 'chown -R root:root "$WORKER_HOME"' in worker
