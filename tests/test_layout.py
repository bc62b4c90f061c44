"""What the project's layout promises: DAG files stay thin wiring, and production code
never depends on the local stack or the emulator."""

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ("dags", "plugins", "gpu_worker")


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules(*folders: str):
    for folder in folders:
        yield from (REPO_ROOT / folder).rglob("*.py")


def test_production_code_never_imports_the_local_stack_or_the_emulator():
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            n for n in _imports(path) if n.startswith(("include.devstack", "moto"))
        )
        for path in [*_modules(*PRODUCTION), *(p for p in _modules("include") if "devstack" not in p.parts)]
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_gpu_worker_package_stands_alone():
    """It is installed on the instances without the Airflow project."""
    offenders = {
        str(path.relative_to(REPO_ROOT)): sorted(
            n for n in _imports(path) if n.split(".")[0] in ("include", "bp_aws", "airflow")
        )
        for path in _modules("gpu_worker")
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_dags_create_no_boto3_clients():
    """AWS calls belong in hooks (plugins/), never in DAG files."""
    offenders = [str(p.relative_to(REPO_ROOT)) for p in _modules("dags") if "boto3" in _imports(p)]
    assert offenders == []
