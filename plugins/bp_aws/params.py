"""Trigger-form params shared by the DAGs that talk to AWS."""

from __future__ import annotations

from airflow.sdk import Param

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
