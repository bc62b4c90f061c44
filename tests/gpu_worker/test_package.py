"""gpu_worker installs on its own (as install-python-worker.sh does it) and its CLI runs
from that venv without the Airflow project."""

import json
import shutil
import subprocess
import sys
import venv
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_package_installs_into_a_bare_venv_and_validates_a_manifest(tmp_path):
    source = tmp_path / "bp-worker-src"  # what Packer's file provisioner uploads
    shutil.copytree(REPO_ROOT / "gpu_worker", source, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
    )
    [wheel] = wheels.glob("bp_gpu_worker-*.whl")
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    site = next((target / "lib").glob("python*/site-packages"))
    shutil.unpack_archive(wheel, site, format="zip")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"manifest_version": 1, "bundle_id": "b1", "name": "empty", "assets": []}))

    result = subprocess.run(
        [str(target / "bin" / "python"), "-m", "gpu_worker.bundle", "validate", str(manifest)],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: only the installed package can be imported
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "valid manifest v1, bundle b1, 0 asset(s)" in result.stdout
    # the node agent is in the package too, and its CLI runs before any AWS library loads
    env_file = tmp_path / "worker.env"
    env_file.write_text(
        "BP_FLEET_STAGE=staging\nBP_FLEET_SLUG=gpu-default\nBP_LOG_GROUP=/gpu-workers/staging/gpu-default\n"
    )
    command = ["-m", "gpu_worker.agent", "cloudwatch-agent-config", "--env-file", str(env_file)]
    config = subprocess.run(
        [str(target / "bin" / "python"), *command, "--out", str(tmp_path / "cwagent.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert config.returncode == 0, config.stderr
    assert "/gpu-workers/staging/gpu-default" in (tmp_path / "cwagent.json").read_text()
    assert not (REPO_ROOT / "gpu_worker" / "build").exists()
