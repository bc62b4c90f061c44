"""One local stack for every end-to-end test: the moto server with the baseline and
the economics month, and the real Airflow services, driven only over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devstack.demo import wait_for_dag
from devstack.scenarios import prepare_stack
from devstack.stack import LocalStack
from include.naming.platform import STAGES


@pytest.fixture(scope="session")
def stack_and_seed(tmp_path_factory):
    stack = LocalStack(tmp_path_factory.mktemp("stack"))
    seeded = stack.start(seed=prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
    yield stack, seeded
    stack.stop()


@pytest.fixture(scope="session")
def stack(stack_and_seed):
    return stack_and_seed[0]


@pytest.fixture(scope="session")
def economics(stack_and_seed):
    return stack_and_seed[1][1]


@pytest.fixture(scope="session")
def approver(stack):
    """The second person, who answers production approvals (``[bp] approvers``)."""
    from devstack.users import APPROVERS

    return stack.client(user=APPROVERS[0])


@pytest.fixture(scope="session")
def ci(stack):
    """The CI user (roles Viewer and CI): triggers and reads, never edits a task instance."""
    from devstack.users import CI

    return stack.client(user=CI)


#: the DAGs the end-to-end tests run, unpaused once their stack has parsed them
DAGS = (
    "platform_preflight",
    "ai_economics_daily",
    "aws_spend_daily",
    "gpu_ami_build_and_bake",
    "gpu_ami_revoke",
    "gpu_fleet_provision",
    "gpu_bundle_rollout",
    "gpu_bundle_rollback",
    "gpu_fleet_guardrails",
    "gpu_fleet_remediation",
    "weekly_review_pack",
    "gpu_dev_node",
    "gpu_dev_node_idle_stop",
)


def _unpaused(client):
    for dag_id in DAGS:
        wait_for_dag(client, dag_id)
        client.set_paused(dag_id, False)
    return client


@pytest.fixture(scope="session")
def client(stack):
    return _unpaused(stack.client())


@pytest.fixture(scope="session")
def celery(tmp_path_factory):
    """The Celery stack (PostgreSQL, Redis, two workers; supervised: a killed worker comes
    back), shared by the files marked ``celery``: (stack, client, economics, events)."""
    events: list[str] = []
    stack = LocalStack(tmp_path_factory.mktemp("celery-stack"), executor="celery", restart=True, on_event=events.append)
    _, economics = stack.start(seed=prepare_stack(stack, datetime.now(UTC).date() - timedelta(days=1)))
    yield stack, _unpaused(stack.client()), economics, events
    stack.stop()


@pytest.fixture(scope="session")
def ami_fleets(stack, client, approver):
    """staging/gpu-default and production/gpu-default provisioned by gpu_fleet_provision:
    an AMI smoke test launches with the fleet's worker profile and runs its stage's smoke
    document (both from the stacks). Their pointers and params stay; the production fleet
    stack goes at the end."""
    from tests.e2e.helpers import provision_fleet

    fleets = [provision_fleet(stack, client, "gpu-default", None, stage, approver=approver) for stage in STAGES]
    yield fleets
    stack.aws_client()("cloudformation").delete_stack(StackName=fleets[-1].fleet_stack)


def stored(stack, location: str) -> dict[str, bytes]:
    """The files a task left at a storage ``location`` it returned (``file://`` on one
    machine, ``s3://<conn>@bucket/prefix`` in the emulator): file name -> content."""
    if location.startswith("file://"):
        return {p.name: p.read_bytes() for p in Path(location.removeprefix("file://")).iterdir() if p.is_file()}
    bucket, _, prefix = location.removeprefix("s3://").split("@", 1)[-1].partition("/")
    s3 = stack.aws_client()("s3")
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=prefix.rstrip("/") + "/", Delimiter="/")
    return {
        o["Key"].rsplit("/", 1)[1]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
        for o in listing.get("Contents", [])
    }
