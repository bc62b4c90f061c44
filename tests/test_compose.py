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
