"""Names of AWS resources that are derived from the account, stage or fleet.

SSM parameter names live in :mod:`include.ssm_paths`; this module names the rest.
"""

from __future__ import annotations

from include import ssm_paths


def models_bucket(account_id: str) -> str:
    return f"bp-models-{account_id}"


def logs_bucket(account_id: str) -> str:
    return f"bp-logs-{account_id}"


def fleet_asg(fleet_stage: str, fleet_slug: str) -> str:
    """The fleet's Auto Scaling group (seed 004: ``asg-<fleet_stage>-<fleet_slug>``)."""
    return f"asg-{ssm_paths.check_fleet_stage(fleet_stage)}-{ssm_paths.check_fleet_slug(fleet_slug)}"
