"""Trigger-form params shared by the DAGs that talk to AWS."""

from __future__ import annotations

from airflow.sdk import Param

from include import ssm_paths

#: What Airflow accepts as a connection id.
CONNECTION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,250}$"


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
    return Param(
        "staging", type="string", enum=list(ssm_paths.FLEET_STAGES), title="Fleet stage", description=description
    )


def fleet_slug_param(description: str = "The fleet, e.g. `gpu-default`.") -> Param:
    """The ``fleet_slug`` param: the admin UI's slug rules, checked before any AWS call."""
    return Param(
        "gpu-default",
        type="string",
        pattern=ssm_paths.FLEET_SLUG_PATTERN,
        maxLength=ssm_paths.FLEET_SLUG_MAX_LENGTH,
        title="Fleet slug",
        description=description,
    )
