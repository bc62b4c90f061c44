"""What DAG files share: trigger-form params and schedule settings."""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param

from include.form_params import form_pattern
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
#: Where ``gpu_fleet_guardrails``' 15-minute schedule begins (environment
#: ``BP_GUARDRAILS_START_DATE``); the local stack sets it to tomorrow, so that its runs are
#: the ones the demo and the tests trigger.
GUARDRAILS_START = pendulum.parse(os.environ.get("BP_GUARDRAILS_START_DATE", "2026-01-01"), tz="UTC")
#: For the tasks that defer (waits in the triggerer): each is safe to run again, and one
#: retry turns Airflow 3.3.2's deferral race (bp_aws.triggers.base) into a retry, not a
#: failed run.
SAFE_TO_RETRY = {"retries": 1, "retry_delay": timedelta(seconds=10)}
#: The platform DAGs (manual and REST-triggered) carry no history.
PLATFORM_START = pendulum.datetime(2026, 1, 1, tz="UTC")


def allowed_aws_conn_ids() -> list[str]:
    """``[bp] aws_conn_ids`` (comma-separated; ``AIRFLOW__BP__AWS_CONN_IDS``): the AWS
    connections a run may name. Whoever triggers picks one of these, never any connection
    Airflow holds. Default: ``aws_default`` only."""
    from airflow.providers.common.compat.sdk import conf

    listed = conf.get("bp", "aws_conn_ids", fallback="aws_default")
    return [name.strip() for name in listed.split(",") if name.strip()] or ["aws_default"]


def aws_conn_id_param(description: str = "Airflow connection to AWS (or to the local emulator).") -> Param:
    """The ``aws_conn_id`` param: one of :func:`allowed_aws_conn_ids` (a choice in the
    form; the REST API refuses any other), checked again in the first task."""
    allowed = allowed_aws_conn_ids()
    return Param(
        allowed[0],
        type="string",
        enum=allowed,
        pattern=form_pattern(CONNECTION_ID_PATTERN),
        title="AWS connection id",
        description=description,
    )


def fleet_stage_param(description: str) -> Param:
    """The ``fleet_stage`` param of the DAGs that act on one fleet."""
    return Param("staging", type="string", enum=list(platform.STAGES), title="Fleet stage", description=description)


def fleet_slug_param(description: str = "The fleet, e.g. `gpu-default`.") -> Param:
    """The ``fleet_slug`` param: the admin UI's slug rules, checked before any AWS call.
    ``description`` is Markdown (the trigger form renders it)."""
    return slug_param("gpu-default", "Fleet slug", description)


def slug_param(default: str | None, title: str, description: str) -> Param:
    """A slug (a fleet's or a dev node's), optional when the default is None; ``description``
    is Markdown."""
    return Param(
        default,
        type="string" if default is not None else ["null", "string"],
        pattern=form_pattern(SLUG_PATTERN),
        maxLength=SLUG_MAX_LENGTH,
        title=title,
        description_md=description,
    )


def fleet_scope_params() -> dict[str, Param]:
    """``fleet_stage`` and ``fleet_slug`` of the DAGs that read every fleet unless narrowed
    (preflight, guardrails): both optional, with the same rules as above."""
    return {
        "fleet_stage": Param(
            None,
            type=["null", "string"],
            enum=[None, *platform.STAGES],
            title="Fleet stage",
            description="Only check this stage (empty: every stage).",
        ),
        "fleet_slug": slug_param(None, "Fleet slug", "Only check this fleet, e.g. `gpu-default` (empty: every fleet)."),
    }


def bundle_id_param() -> Param:
    """A bundle in the models bucket (``bundles/<bundle_id>/manifest.json``)."""
    return Param(
        type="string",
        pattern=form_pattern(rollout.BUNDLE_ID_PATTERN),
        maxLength=128,
        title="Bundle id",
        description_md="The bundle to roll out: the folder name under `bundles/` in the models bucket (its "
        "manifest is `bundles/<bundle_id>/manifest.json`; the admin UI lists them under Assets), e.g. "
        "`9edf4c92-0e44-5548-a65a-4167127dd5a0`.",
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
        pattern=form_pattern(rollout.INSTANCE_ID_PATTERN),
        title="Instance id (dev_node only)",
        description_md="The running node to install the bundle on, e.g. `i-0123456789abcdef0`.",
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
        [50, 100],
        type="array",
        items={"type": "integer", "minimum": 1, "maximum": 100},
        maxItems=10,
        title="Checkpoint percentages",
        description="Where the refresh pauses for a bake window and a verdict (rising, ending at 100); "
        "[] for one verdict at the end.",
    )


def analysis_params() -> dict[str, Param]:
    """The limits a rollout is judged by (:class:`include.rollouts.analysis.Thresholds`:
    the defaults live there, and so do the ranges)."""
    from include.rollouts.analysis import Thresholds

    defaults, limits = Thresholds(), Thresholds.LIMITS

    def number(name: str, title: str, description: str) -> Param:
        low, high = limits[name]
        kind = "integer" if isinstance(getattr(defaults, name), int) else "number"
        return Param(
            getattr(defaults, name), type=kind, minimum=low, maximum=high, title=title, description=description
        )

    return {
        "bake_window_seconds": number(
            "bake_window_seconds",
            "Bake window (s)",
            "How long the fleet runs at each checkpoint before its metrics are judged (the triggerer waits it).",
        ),
        "error_rate_ceiling": number("error_rate_ceiling", "ErrorRate ceiling (%)", "Failed above this error rate."),
        "error_rate_margin": number(
            "error_rate_margin", "ErrorRate margin (points)", "Failed this many points over the baseline."
        ),
        "p50_ratio": number(
            "p50_ratio", "Median job time ratio", "Failed when the median job (p50) is this much slower."
        ),
        "min_jobs": number("min_jobs", "Minimum jobs", "Fewer jobs in the window: inconclusive, a person decides."),
    }


def run_id_param(title: str, description: str, default: str | None = "") -> Param:
    """An Airflow run id (:data:`include.rollouts.rollout.RUN_ID_PATTERN`); None allowed
    when the default is None."""
    from include.rollouts.rollout import RUN_ID_PATTERN

    if default is None:
        return Param(
            None, type=["null", "string"], pattern=form_pattern(RUN_ID_PATTERN), title=title, description=description
        )
    # required: the form says "This field is required" until it is filled in
    return Param(
        default, type="string", minLength=1, pattern=form_pattern(RUN_ID_PATTERN), title=title, description=description
    )


def switch_param(default: bool, title: str, description: str) -> Param:
    """An on/off param (a checkbox in the trigger form)."""
    return Param(default, type="boolean", title=title, description=description)


def instance_type_param(title: str, description: str) -> Param:
    """An EC2 instance type (``g4dn.xlarge``); which ones a fleet allows is a domain check."""
    return Param(
        "g4dn.xlarge",
        type="string",
        pattern=form_pattern(platform.INSTANCE_TYPE_PATTERN),
        title=title,
        description=description,
    )


def rollout_params() -> dict[str, Param]:
    """The trigger form of ``gpu_bundle_rollout``."""
    return {
        "fleet_stage": fleet_stage_param("The stage of the fleet the bundle goes to."),
        "fleet_slug": fleet_slug_param(),
        "bundle_id": bundle_id_param(),
        "strategy": strategy_param(),
        "instance_id": instance_id_param(),
        "min_healthy_percentage": min_healthy_percentage_param(),
        "checkpoint_percentages": checkpoint_percentages_param(),
        "auto_rollback": Param(True, type="boolean", title="Roll back", description="On failure, refresh back."),
        **analysis_params(),
        "rollback_of": run_id_param("Rollback of", "Set by gpu_bundle_rollback: the run it undoes.", None),
        "aws_conn_id": aws_conn_id_param(),
    }


def dev_node_params() -> dict[str, Param]:
    """The trigger form of ``gpu_dev_node``."""
    from include.devnodes import lifecycle

    low, high = lifecycle.IDLE_STOP_MINUTES
    return {
        "action": Param(
            "status",
            type="string",
            enum=list(lifecycle.ACTIONS),
            title="Action",
            description="create (from a fleet's AMI), start, stop, restart, status, terminate (production or a "
            "node under an hour old: after an Approve).",
        ),
        "fleet_stage": fleet_stage_param("The stage the dev node belongs to."),
        "name": slug_param(
            "my-dev-node",
            "Dev node name",
            "The node's own slug, e.g. `alice-sdxl` (lowercase, digits, single hyphens).",
        ),
        "owner": Param(
            None,
            type=["null", "string"],
            pattern=form_pattern(lifecycle.OWNER_PATTERN),
            title="Owner (create)",
            description="Who the node belongs to: its cost and its idle alerts go to them.",
        ),
        "fleet_slug": slug_param(
            None, "Fleet (create)", "The fleet whose AMI (and so bundle) the node starts from, e.g. `gpu-default`."
        ),
        "instance_type": Param(
            None,
            type=["null", "string"],
            pattern=form_pattern(platform.INSTANCE_TYPE_PATTERN),
            title="Instance type (create)",
            description="One the fleet's template allows, e.g. g5.xlarge.",
        ),
        "idle_stop_minutes": Param(
            lifecycle.DEFAULT_IDLE_STOP_MINUTES,
            type="integer",
            minimum=low,
            maximum=high,
            title="Idle stop (minutes, create)",
            description="gpu_dev_node_idle_stop stops the node after this long without CPU/GPU activity.",
        ),
        "reason": Param(
            None,  # optional: a "" default made the form count it as missing, and refuse to submit
            type=["null", "string"],
            pattern=form_pattern(lifecycle.REASON_PATTERN),
            maxLength=200,
            title="Reason",
            description="Kept in the lifecycle event.",
        ),
        "aws_conn_id": aws_conn_id_param(),
    }
