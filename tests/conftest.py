"""Test settings that must exist before Airflow or boto3 is imported anywhere.

Airflow reads AIRFLOW_HOME when it is first imported and writes airflow.cfg there, so
the suite gets its own home under .local/ (never a developer's real one). boto3 gets
moto's dummy credentials and no instance-metadata lookups, so no test can reach AWS.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
#: one home per pytest process (make test runs the end-to-end tests in a second one):
#: Airflow writes its airflow.cfg there on first import
TEST_HOME = REPO_ROOT / ".local" / "pytest" / os.environ.get("BP_TEST_HOME", "main")
#: screenshots and other files a person looks at after a run (kept, never asserted on)
ARTIFACTS = Path(os.environ.get("BP_TEST_ARTIFACTS", REPO_ROOT / ".local" / "test-artifacts"))
#: Debian's Chromium (``make browser`` installs it); BP_CHROMIUM points elsewhere
CHROMIUM = Path(os.environ.get("BP_CHROMIUM", "/usr/bin/chromium"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(TEST_HOME / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        # the plugins' tests run triggers in-process: no Airflow race to keep clear of
        "AIRFLOW__BP__TRIGGER_FIRST_POLL_DELAY": "0",
    }
)
for name in [key for key in os.environ if key.startswith(("AWS_PROFILE", "AWS_SESSION_TOKEN", "AIRFLOW_CONN_"))]:
    del os.environ[name]
(TEST_HOME / "airflow").mkdir(parents=True, exist_ok=True)


def _stop_as_on_ctrl_c(signum, frame):
    """SIGTERM ends the session as Ctrl-C does, tearing the fixtures down (an end-to-end
    stack stops with them): ``make test`` forwards a Ctrl-C as SIGTERM to its pytests,
    which run as background jobs or in a session of their own and never see the Ctrl-C."""
    raise KeyboardInterrupt


signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)


def _moto_public_images() -> str:
    """A file of moto's own 44 public images, for ``MOTO_AMIS_PATH`` (read when moto's EC2
    is first imported). Without it, each test's emulated EC2 also parses moto's 1,227
    ECS-optimized and 30 "latest" images of the region: 0.25 CPU-s a test (measured: the
    unit tests' own CPU 257 -> 194 s, their wall 389 -> 325 s). Nothing of ours looks
    those up (no ``/aws/service/...`` parameter).
    The end-to-end stacks' moto servers inherit the setting."""
    from moto.utilities.utils import load_resource

    path = TEST_HOME / "moto-public-amis.json"
    path.write_text(json.dumps(load_resource("ec2/resources/amis.json")))
    return str(path)


os.environ["MOTO_AMIS_PATH"] = _moto_public_images()


def _share_botocore_data_loader() -> None:
    """One botocore data loader for every session the tests create, as in the Airflow
    processes (``plugins/airflow_local_settings.py``): moto's ``mock_aws`` starts each
    test on a new default session, and each Airflow hook and trigger makes one of its
    own, so each would parse ``endpoints.json`` and every service model again (about
    0.4 s of JSON per test). Measured on 107 tests: 50 s -> 30 s."""
    from airflow_local_settings import share_botocore_data_loader

    assert share_botocore_data_loader() is not None, "botocore no longer takes a shared data loader"


_share_botocore_data_loader()


@pytest.fixture
def aws():
    """moto in-process: a fresh emulated account per test; yields a client factory."""
    import boto3
    from moto import mock_aws

    from devstack import emulator

    emulator.install()
    with mock_aws():
        yield boto3.client


@pytest.fixture
def seeded(aws):
    """The platform baseline seeded into the emulated account."""
    from devstack.baseline import seed_baseline

    return seed_baseline(aws)


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto over real HTTP: a server thread inside the test process, so boto3 hooks *and*
    the triggers' aiobotocore clients reach it, while tests can still advance moto's
    backend state directly (same process)."""
    from moto.server import ThreadedMotoServer

    from devstack import emulator
    from devstack.processes import free_port

    emulator.install()
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_http(moto_endpoint, monkeypatch):
    """A fresh emulated account behind ``aws_default``; yields a boto3 client factory."""
    import urllib.request

    from devstack.stack import aws_connection_uri, emulator_client_factory

    request = urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=30).close()
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_uri(moto_endpoint))
    return emulator_client_factory(moto_endpoint)


@pytest.fixture
def baseline(aws_http):
    """The platform baseline seeded into the account :func:`aws_http` reset."""
    from devstack.baseline import seed_baseline

    return seed_baseline(aws_http)


def two_node_group(client, baseline, name: str, *, instance_type: str = "g4dn.xlarge", tags=None) -> str:
    """A fleet's Auto Scaling group as provisioning leaves it, two nodes from launch
    template ``bp-fleet-lt`` (the baseline's image) in the first private subnet, for the
    tests that need a fleet without its stack; returns the template's id. ``client``: a
    boto3 client factory (the ``aws`` or ``aws_http`` fixture)."""
    template = client("ec2").create_launch_template(
        LaunchTemplateName="bp-fleet-lt",
        LaunchTemplateData={"ImageId": baseline.base_ami_id, "InstanceType": instance_type},
    )["LaunchTemplate"]["LaunchTemplateId"]
    client("autoscaling").create_auto_scaling_group(
        AutoScalingGroupName=name,
        MinSize=0,
        MaxSize=4,
        DesiredCapacity=2,
        LaunchTemplate={"LaunchTemplateId": template, "Version": "1"},
        VPCZoneIdentifier=baseline.private_subnet_ids[0],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": True} for k, v in (tags or {}).items()],
    )
    return template


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Playwright, for the pages people read (the review pack,
    the Airflow UI). Module-scoped: Playwright's sync API keeps an asyncio loop running in
    this thread while it is open, and later tests run triggers with ``asyncio.run``."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is not at {CHROMIUM}: run `make browser` (or set BP_CHROMIUM)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()
