"""Names of AWS resources that are derived from the account, stage or fleet.

SSM parameter names live in :mod:`include.ssm_paths`; this module names the rest.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from include import ssm_paths

if TYPE_CHECKING:
    from include.economics.weekly import IsoWeek


def models_bucket(account_id: str) -> str:
    return f"bp-models-{account_id}"


def logs_bucket(account_id: str) -> str:
    return f"bp-logs-{account_id}"


def fleet_asg(fleet_stage: str, fleet_slug: str) -> str:
    """The fleet's Auto Scaling group (seed 004: ``asg-<fleet_stage>-<fleet_slug>``)."""
    return f"asg-{ssm_paths.check_fleet_stage(fleet_stage)}-{ssm_paths.check_fleet_slug(fleet_slug)}"


#: Cost-allocation tag keys on every fleet resource. Cost Explorer groups the GPU cost by
#: ``fleet`` (economics), and the scale-to-zero function recognizes its own stage's fleets
#: by both (``gpu-shared.yaml`` passes the same keys to it).
STAGE_TAG = "stage"
FLEET_TAG = "fleet"


def shared_stack(fleet_stage: str) -> str:
    """The stage's scale-to-zero topic and function (seed 004's ``bp-gpu-shared``, per stage)."""
    return f"bp-gpu-shared-{ssm_paths.check_fleet_stage(fleet_stage)}"


def fleet_stack(fleet_stage: str, fleet_slug: str) -> str:
    """One fleet's stack (seed 004: ``bp-gpu-fleet-<fleet_stage>-<fleet_slug>``)."""
    return f"bp-gpu-fleet-{ssm_paths.check_fleet_stage(fleet_stage)}-{ssm_paths.check_fleet_slug(fleet_slug)}"


def bundle_apply_document(fleet_stage: str) -> str:
    """Run Command document installing a fleet's active bundle (``gpu-shared.yaml``)."""
    return f"bp-bundle-apply-{ssm_paths.check_fleet_stage(fleet_stage)}"


def bundle_status_document(fleet_stage: str) -> str:
    """Run Command document printing a node's installed bundle as JSON (``gpu-shared.yaml``)."""
    return f"bp-bundle-status-{ssm_paths.check_fleet_stage(fleet_stage)}"


def rollout_audit_key(fleet_stage: str, fleet_slug: str, run_id: str) -> str:
    """One immutable JSON-lines object per rollout in the logs bucket."""
    return f"audit/rollouts/{fleet_stage}/{fleet_slug}/{run_id}.jsonl"


def asset_sync_key(fleet_stage: str, fleet_slug: str, run_id: str, instance_id: str) -> str:
    """Where a Run Command bundle apply's output is kept (seed 004: ``asset-sync/``)."""
    return f"asset-sync/{fleet_stage}/{fleet_slug}/{run_id}/{instance_id}.json"


def weekly_report_key(week: IsoWeek, filename: str) -> str:
    """Where a weekly review pack's file lives in the logs bucket."""
    return f"reports/weekly/{week}/{filename}"
