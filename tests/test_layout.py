"""What docs/architecture.md promises, enforced: imports run one way (dags → task modules
→ adapters → domain), production code never reaches the development tooling, and no
file outgrows its budget."""

from __future__ import annotations

import ast
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = {"dags", "bp_tasks", "bp_aws", "bp_data", "bp_api", "include", "gpu_worker", "devstack", "tests", "bench"}
DEV_TOOLING = {"devstack", "tests", "bench", "moto", "pytest", "playwright"}

#: Layer -> what it may import from the project (besides itself); third-party is free
#: except where ``FORBIDDEN`` says otherwise.
MAY_IMPORT = {
    "dags": {"bp_tasks", "bp_aws", "include"},
    "bp_tasks": {"bp_aws", "bp_data", "include", "gpu_worker"},
    "bp_aws": {"include", "gpu_worker"},
    "bp_data": {"include", "gpu_worker"},
    "bp_api": {"include"},
    "plugin registration": {"bp_api"},  # plugins/*.py: what Airflow's plugin manager loads
    "local settings": set(),  # plugins/airflow_local_settings.py: imported by Airflow as it starts
    "include": {"gpu_worker"},
    "gpu_worker": set(),
}
#: The domain is plain Python: testable without Airflow, installable without it.
FORBIDDEN = {"include": {"airflow"}, "gpu_worker": {"airflow"}}
DAG_FILE_LINES = 150
MODULE_LINES = 400


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _layer(path: Path) -> str:
    relative = path.relative_to(REPO_ROOT).parts
    if relative[0] != "plugins":
        return relative[0]
    if relative[1:] == ("airflow_local_settings.py",):
        return "local settings"
    return relative[1] if len(relative) > 2 else "plugin registration"


def _production_modules():
    for folder in ("dags", "plugins", "include", "gpu_worker"):
        yield from (REPO_ROOT / folder).rglob("*.py")


def test_imports_run_one_way_and_never_reach_the_development_tooling():
    offenders = {}
    for path in _production_modules():
        layer = _layer(path)
        allowed = MAY_IMPORT[layer] | {layer}
        for name in _imports(path):
            top = name.split(".")[0]
            wrong_layer = top in PROJECT and top not in allowed
            if wrong_layer or top in DEV_TOOLING or top in FORBIDDEN.get(layer, ()):
                offenders.setdefault(str(path.relative_to(REPO_ROOT)), []).append(name)
    assert offenders == {}


def test_the_ci_client_needs_only_the_standard_library():
    import sys

    for path in (REPO_ROOT / "include" / "cli").glob("*.py"):
        outside = {n for n in _imports(path) if n.split(".")[0] not in sys.stdlib_module_names | {"include"}}
        assert outside == set(), path.name


def test_dag_files_are_wiring_and_create_no_clients_or_task_bodies():
    for path in (REPO_ROOT / "dags").glob("*.py"):
        tree = ast.parse(path.read_text())
        decorated = [
            node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            and any("task" in ast.unparse(decorator) for decorator in node.decorator_list)
        ]
        assert decorated == [], f"{path.name}: task bodies belong in plugins/bp_tasks/{path.name}"
        assert "boto3" not in _imports(path)
        assert (REPO_ROOT / "plugins" / "bp_tasks" / path.name).exists(), f"{path.name} has no task module"


def test_files_stay_within_their_budget():
    over = {}
    for path in REPO_ROOT.glob("**/*.py"):
        relative = path.relative_to(REPO_ROOT)
        if relative.parts[0].startswith("."):
            continue
        lines = len(path.read_text().splitlines())
        budget = DAG_FILE_LINES if relative.parts[0] == "dags" else MODULE_LINES
        if lines > budget:
            over[str(relative)] = lines
    assert over == {}


def test_the_provider_shaped_package_holds_only_provider_shaped_parts():
    parts = {p.name for p in (REPO_ROOT / "plugins" / "bp_aws").iterdir() if not p.name.startswith("__")}
    assert parts <= {
        "base.py",
        "hooks",
        "operators",
        "sensors",
        "triggers",
        "waiters",
        "notifiers",
        "utils",
        "exceptions.py",
    }


#: what a DAG file must not import when parsed: each costs every parse 100 ms or more
#: (bench/dag_parse_times.py); hooks, triggers and pandas are imported where tasks run
HEAVY_AT_PARSE = ("boto3", "pandas", "airflow.providers.amazon.aws.hooks.base_aws")

_PARSE_EVERY_DAG = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": len(bag.dags), "errors": bag.import_errors,
                  "heavy": sorted(m for m in sys.argv[2:] if m in sys.modules)}))
"""


def test_parsing_the_dag_files_imports_no_aws_sdk_and_no_pandas(tmp_path):
    import json
    import os
    import subprocess
    import sys

    env = dict(
        os.environ,
        AIRFLOW_HOME=str(tmp_path),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
    )
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_EVERY_DAG, str(REPO_ROOT / "dags"), *HEAVY_AT_PARSE],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["dags"], report["errors"]) == (len(list((REPO_ROOT / "dags").glob("[!_]*.py"))), {})
    assert report["heavy"] == []


def test_the_node_package_needs_only_the_standard_library_boto3_and_nvml():
    import sys

    allowed = sys.stdlib_module_names | {"gpu_worker", "boto3", "botocore", "pynvml"}
    outside = {
        str(path.relative_to(REPO_ROOT)): sorted(n for n in _imports(path) if n.split(".")[0] not in allowed)
        for path in (REPO_ROOT / "gpu_worker").rglob("*.py")
    }
    assert {path: names for path, names in outside.items() if names} == {}


def test_no_double_and_nothing_of_the_local_stack_publishes_a_metric_itself():
    """Node metrics come from the real node agent (the emulated nodes run it); the local
    stack's history goes through the agent's own batching (gpu_worker.agent.publisher)."""
    publishers = [
        str(path.relative_to(REPO_ROOT))
        for folder in ("tests/doubles", "devstack")
        for path in (REPO_ROOT / folder).rglob("*.py")
        if "put_metric_data" in path.read_text()
    ]
    assert publishers == []


#: the end-to-end groups of `make test`, each a pytest with a stack of its own (Makefile)
E2E_GROUPS = ("fleets", "amis", "services", "celery")


def test_every_end_to_end_file_names_exactly_one_group():
    """A file with no group would run in no pytest of `make test`; one with two, twice."""
    import re

    groups = {
        path.name: re.findall(rf"pytest\.mark\.({'|'.join(E2E_GROUPS)})\b", path.read_text())
        for path in (REPO_ROOT / "tests" / "e2e").glob("test_*.py")
    }
    assert {name: found for name, found in groups.items() if len(found) != 1} == {}
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"E2E_GROUPS := {' '.join(E2E_GROUPS)}" in makefile


def test_the_tests_mirror_the_codes_folders():
    """tests/plugins/<package>/ for plugins/<package>/, tests/include/<capability>/ for
    include/<capability>/: a behaviour's tests are where its code is."""
    top_level = {f"test_{p.stem}.py" for p in (REPO_ROOT / "plugins").glob("*.py")}
    loose = sorted(p.name for p in (REPO_ROOT / "tests" / "plugins").glob("test_*.py") if p.name not in top_level)
    assert loose == [], "a plugin test belongs in tests/plugins/<the package it tests>/"
    for tests_root, code_root in (("tests/plugins", "plugins"), ("tests/include", "include")):
        folders = [p for p in (REPO_ROOT / tests_root).iterdir() if p.is_dir() and p.name != "__pycache__"]
        mirrored = {p.name: (REPO_ROOT / code_root / p.name).is_dir() for p in folders}
        assert all(mirrored.values()), f"{tests_root}: no {code_root}/ folder for {mirrored}"


#: what DAG files may read in Jinja: the AWS connection. As an XComArg of the first task
#: it would make that task a direct upstream of every AWS operator, and an operator that
#: joins branches (``NONE_FAILED_MIN_ONE_SUCCESS``, e.g. the AMI promotion) would then run
#: on the first task's success alone when its own branch was skipped. The param can't
#: change during a run, and the first task checks it against the allow-list.
JINJA_PARAMS_ALLOWED = {"aws_conn_id"}


def test_dag_files_template_no_operator_field_from_params_or_xcom():
    """A value a task validated reaches the next task as that task's output, never as
    ``{{ params.x }}`` (the unvalidated form value) or a hand-written ``xcom_pull``."""
    import re

    spliced = {}
    for path in (REPO_ROOT / "dags").glob("*.py"):
        for jinja in re.findall(r"\{\{(.*?)\}\}", path.read_text()):
            params = set(re.findall(r"params\.(\w+)", jinja)) - JINJA_PARAMS_ALLOWED
            if params or "xcom_pull" in jinja:
                spliced.setdefault(path.name, []).append(jinja.strip())
    assert spliced == {}


def test_a_dags_task_module_never_imports_another_dags():
    """plugins/bp_tasks/<dag_id>.py holds one DAG's bodies; what two DAGs share lives in
    include/, an adapter, or a shared task module (common, approvals, audit, fleet_lock...)."""
    dag_modules = {path.stem for path in (REPO_ROOT / "dags").glob("[!_]*.py")}
    crossing = {}
    for name in sorted(dag_modules):
        imported = set()
        for node in ast.walk(ast.parse((REPO_ROOT / "plugins" / "bp_tasks" / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "bp_tasks":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bp_tasks."):
                imported.add(node.module.split(".")[1])
        if imported & (dag_modules - {name}):
            crossing[name] = sorted(imported & (dag_modules - {name}))
    assert crossing == {}


def test_the_domains_capabilities_import_each_other_without_a_cycle():
    """include/<capability>/ may use another capability, never in a circle (observability
    reads the economics' tables and rules; the economics never read observability)."""
    capabilities = {p.name for p in (REPO_ROOT / "include").iterdir() if p.is_dir() and p.name != "__pycache__"}
    uses: dict[str, set[str]] = {name: set() for name in capabilities}
    for name in capabilities:
        for path in (REPO_ROOT / "include" / name).rglob("*.py"):
            for module in _imports(path):
                parts = module.split(".")
                if parts[0] == "include" and len(parts) > 1 and parts[1] in capabilities and parts[1] != name:
                    uses[name].add(parts[1])

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in uses[start])

    assert sorted(name for name in capabilities if reaches(name, name, {name})) == []


def test_task_modules_call_aws_through_hook_methods():
    """``hook.conn.<api>`` in a task body is an AWS call with no name, no not-found
    handling and no test of its own: it belongs in a hook method."""
    import re

    raw = {
        path.name: re.findall(r"\.conn\.\w+", path.read_text())
        for path in (REPO_ROOT / "plugins" / "bp_tasks").glob("*.py")
    }
    assert {name: calls for name, calls in raw.items() if calls} == {}


def test_a_request_is_built_from_params_once_in_its_runs_first_task():
    """``X.from_params`` is the request's one check, named in ``validated(...)`` by the run's
    first task; a later task gets the request itself (Airflow's serde), never rebuilds it."""

    def rebuilds(path: Path) -> int:
        tree = ast.parse(path.read_text())
        checked = {
            id(call.args[0])
            for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "validated" and call.args
        }
        return sum(
            1
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and node.attr == "from_params" and id(node) not in checked
        )

    found = {path.name: rebuilds(path) for path in (REPO_ROOT / "plugins" / "bp_tasks").glob("*.py")}
    assert {name: count for name, count in found.items() if count} == {}
