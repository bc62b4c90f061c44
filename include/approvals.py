"""Which changes wait for a person's Approve in the Airflow UI before they happen."""

from __future__ import annotations

#: Stages whose AMI promotions, fleet applies and unattended remediations need an Approve.
APPROVAL_STAGES = ("production",)


def needs_approval(stage: str) -> bool:
    """Production changes are approved by a person; staging ones run unattended."""
    return stage in APPROVAL_STAGES
