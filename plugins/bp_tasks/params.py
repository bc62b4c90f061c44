"""What DAG files share: trigger-form params and schedule settings."""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import Param

from include.naming import platform
from include.naming.fleet import SLUG_MAX_LENGTH, SLUG_PATTERN
from include.rollouts import rollout

#: What Airflow accepts as a connection id.
CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"

#: Where the economics DAGs' scheduled history begins: catchup of ``ai_economics_daily``
#: runs every day since, and ``weekly_review_pack`` runs its latest missed Monday. A
#: deployment setting (environment ``BP_ECONOMICS_START_DATE``, YYYY-MM-DD); the local
#: stack sets it to tomorrow, so that unpausing creates no scheduled run beside the demo's.
ECONOMICS_START = pendulum.parse(os.environ.get("BP_ECONOMICS_START_DATE", "2026-01-01"), tz="UTC")
#: The platform DAGs (manual and REST-triggered) carry no history.
PLATFORM_START = pendulum.datetime(2026, 1, 1, tz="UTC")


def aws_conn_id_param(description: str = "Airflow connection to AWS (or to the local emulator).") -> Param:
    """The ``aws_conn_id`` param: which AWS connection the run uses (default ``aws_default``)."""
    return Param(
        "aws_default",
        type="string",
        pattern=CONNECTION_ID_PATTERN,
        title="AWS connection id",
        description=description,
    )


def fleet_stage_param(description: str) -> Param:
    """The ``fleet_stage`` param of the DAGs that act on one fleet."""
    return Param("staging", type="string", enum=list(platform.STAGES), title="Fleet stage", description=description)


def fleet_slug_param(description: str = "The fleet, e.g. `gpu-default`.") -> Param:
    """The ``fleet_slug`` param: the admin UI's slug rules, checked before any AWS call."""
    return Param(
        "gpu-default",
        type="string",
        pattern=SLUG_PATTERN,
        maxLength=SLUG_MAX_LENGTH,
        title="Fleet slug",
        description=description,
    )


def bundle_id_param() -> Param:
    """A bundle in the models bucket (``bundles/<bundle_id>/manifest.json``)."""
    return Param(
        type="string",
        pattern=rollout.BUNDLE_ID_PATTERN,
        maxLength=128,
        title="Bundle id",
        description="The bundle to roll out: its manifest is `bundles/<bundle_id>/manifest.json`.",
    )


def strategy_param() -> Param:
    return Param(
        "refresh",
        type="string",
        enum=list(rollout.STRATEGIES),
        title="Strategy",
        description="pointer_only; dev_node (one running node, by Run Command); refresh (replace the fleet's "
        "nodes); bake_and_refresh (bake a new AMI first).",
    )


def instance_id_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        pattern=rollout.INSTANCE_ID_PATTERN,
        title="Instance id (dev_node only)",
        description="The running node to install the bundle on, e.g. `i-0123456789abcdef0`.",
    )


def min_healthy_percentage_param() -> Param:
    return Param(
        90,
        type="integer",
        minimum=0,
        maximum=100,
        title="Minimum healthy %",
        description="Share of the fleet that stays in service while the refresh replaces nodes.",
    )


def checkpoint_percentages_param() -> Param:
    return Param(
        [],
        type="array",
        items={"type": "integer", "minimum": 1, "maximum": 100},
        maxItems=10,
        title="Checkpoint percentages",
        description="e.g. [50, 100]: the refresh pauses one warmup at each.",
    )
