"""One local stack for every end-to-end test: the moto server with the baseline and
the economics month, and the real Airflow services, driven only over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from devstack.demo import prepare_stack, wait_for_dag
from devstack.stack import LocalStack


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
def client(stack):
    client = stack.client()
    for dag_id in (
        "platform_preflight",
        "ai_economics_daily",
        "gpu_ami_build_and_bake",
        "gpu_fleet_provision",
        "gpu_bundle_rollout",
        "weekly_review_pack",
    ):
        wait_for_dag(client, dag_id)
        client.set_paused(dag_id, False)
    return client
