"""docker-compose.yaml can't run here (no Docker engine): check what a reader relies on."""

import re
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def _pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", (REPO_ROOT / "requirements.txt").read_text(), re.M)
    assert match, f"{package} is not pinned in requirements.txt"
    return match[1]


def test_every_service_the_readme_names_exists(compose):
    readme = (REPO_ROOT / "README.md").read_text()
    section = readme.split("<!-- compose-services -->")[1].split("<!-- /compose-services -->")[0]
    named = set(re.findall(r"`([a-z][a-z0-9-]+)`", section))
    assert named >= AIRFLOW_SERVICES | {"postgres", "redis", "influxdb", "grafana", "moto"}
    assert named <= set(compose["services"])


def test_airflow_runs_celery_on_postgres_and_redis(compose):
    for name in AIRFLOW_SERVICES:
        service = compose["services"][name]
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:6379"), name
        assert service["build"]["dockerfile"] == "infra/docker/airflow.Dockerfile", name
        mounts = {volume.split(":")[0] for volume in service["volumes"]}
        assert {"./dags", "./plugins", "./include", "./infra"} <= mounts, name
    commands = {compose["services"][n]["command"] for n in AIRFLOW_SERVICES - {"airflow-init"}}
    assert commands == {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}


def test_airflow_runs_the_fab_auth_manager_with_the_projects_roles_and_users(compose):
    """The roles are include.access's, the approvers and passwords come from .env, and the
    airflow_api connection is the Service user, never an admin."""
    import json

    from include.access import custom_roles_json

    for name in AIRFLOW_SERVICES:
        env = compose["services"][name]["environment"]
        assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith(".fab_auth_manager.FabAuthManager"), name
        assert json.loads(env["AIRFLOW__FAB__CUSTOM_ROLES"]) == json.loads(custom_roles_json()), name
        assert env["AIRFLOW__BP__APPROVERS"].startswith("${BP_APPROVERS:?"), name
        assert '"login":"airflow-api"' in env["AIRFLOW_CONN_AIRFLOW_API"], name
    init = " ".join(compose["services"]["airflow-init"]["command"])
    assert "--role Service --username airflow-api" in init
    assert "--role Admin" in init


def test_the_airflow_image_gets_the_same_requirements():
    dockerfile = (REPO_ROOT / "infra" / "docker" / "airflow.Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:(\S+)-python(\S+) AS airflow$", dockerfile, re.M)
    assert base, "the image must build FROM the official apache/airflow image"
    assert base[1] == _pinned("apache-airflow")
    assert base[2] == "3.11"
    assert re.search(r"^COPY .*requirements\.txt (\S+)$", dockerfile, re.M)
    assert re.search(r"^RUN pip install .*-r /opt/airflow/requirements\.txt$", dockerfile, re.M)


def test_grafana_is_provisioned_with_the_influxdb_datasource(compose):
    grafana = compose["services"]["grafana"]
    assert "./infra/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
    datasources = yaml.safe_load(
        (REPO_ROOT / "infra" / "grafana" / "provisioning" / "datasources" / "influxdb.yaml").read_text()
    )["datasources"]
    [influx] = datasources
    assert influx["type"] == "influxdb"
    assert influx["url"] == "http://influxdb:8086"
    assert influx["jsonData"]["version"] == "Flux"
    assert compose["services"]["influxdb"]["image"].startswith("influxdb:2")


def test_the_emulator_is_only_in_the_local_profile_and_loads_the_project_server(compose):
    moto = compose["services"]["moto"]
    assert moto["profiles"] == ["local"]
    assert moto["entrypoint"][:3] == ["python", "-m", "devstack.moto_server"]
    assert all("profiles" not in service for name, service in compose["services"].items() if name != "moto")


# --- hardening: no public default secret, loopback ports, shared storage and logs -------

#: compose's interpolation; ``$${X}`` is its escape (a literal ``${X}`` for the container's shell)
_INTERPOLATION = re.compile(r"(?<!\$)\$\{(?P<name>[A-Z0-9_]+)(?P<op>:?[-?])?(?P<rest>[^}]*)\}")
_SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET")


def hardening_problems(text: str) -> list[str]:
    """Every way the compose file falls short of the hardening rules (empty: none)."""
    problems = []
    for match in _INTERPOLATION.finditer(text):
        if _SECRET_NAME.search(match["name"]) and match["op"] != ":?":
            problems.append(f"secret {match['name']} is not required (${{{match['name']}:?...}})")
    services = yaml.safe_load(text)["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            if not str(port).startswith(("${BP_BIND_ADDRESS:-127.0.0.1}:", "127.0.0.1:")):
                problems.append(f"{name} publishes {port} on every interface")
    for name in AIRFLOW_SERVICES:
        env = services[name]["environment"]
        if not str(env.get("AIRFLOW__BP__OBJECT_STORAGE_BASE", "")).startswith("${BP_OBJECT_STORAGE_BASE:?"):
            problems.append(f"{name} has no required object-storage base")
        if str(env.get("AIRFLOW__LOGGING__REMOTE_LOGGING")).lower() != "true":
            problems.append(f"{name} does not log remotely")
    return problems


def test_every_secret_is_required_ports_are_loopback_and_storage_is_shared():
    assert hardening_problems((REPO_ROOT / "docker-compose.yaml").read_text()) == []


@pytest.mark.parametrize(
    ("weaken", "problem"),
    [
        (("${AIRFLOW_JWT_SECRET:?set AIRFLOW_JWT_SECRET in .env}", "${AIRFLOW_JWT_SECRET:-change-me}"), "JWT"),
        (("${AIRFLOW_FERNET_KEY:?", "${AIRFLOW_FERNET_KEY:-}${UNUSED:?"), "FERNET"),
        (('"${BP_BIND_ADDRESS:-127.0.0.1}:3000:3000"', '"3000:3000"'), "grafana publishes 3000:3000"),
        (('AIRFLOW__LOGGING__REMOTE_LOGGING: "true"', 'AIRFLOW__LOGGING__REMOTE_LOGGING: "false"'), "remotely"),
    ],
)
def test_a_copy_with_a_default_put_back_fails(weaken, problem):
    text = (REPO_ROOT / "docker-compose.yaml").read_text()
    assert weaken[0] in text
    problems = hardening_problems(text.replace(weaken[0], weaken[1], 1))
    assert any(problem in line for line in problems), problems


def test_the_env_example_names_every_required_variable():
    required = {
        m["name"] for m in _INTERPOLATION.finditer((REPO_ROOT / "docker-compose.yaml").read_text()) if m["op"] == ":?"
    }
    example = (REPO_ROOT / "infra" / "docker" / "compose.env.example").read_text()
    assert required <= set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
