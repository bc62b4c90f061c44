"""Where tasks hand each other files: an :class:`ObjectStoragePath` under
``[bp] object_storage_base`` - ``s3://aws_default@bp-logs-<account>/airflow`` in a
deployment, ``file://`` on one machine - never a worker's local folder: on Celery or
Kubernetes the next task runs on another host.

Every try of a task writes into a folder of its own (``.../<run_id>/try-<n>``), so a retry
after a killed try never reads half of what the dead one wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

from airflow.providers.common.compat.sdk import conf
from airflow.sdk import ObjectStoragePath


def storage_base() -> ObjectStoragePath:
    """``[bp] object_storage_base``; unset: ``$AIRFLOW_HOME/storage`` (one machine only)."""
    base = conf.get("bp", "object_storage_base", fallback="")
    if not base:
        base = f"file://{Path(os.environ.get('AIRFLOW_HOME', '~/airflow')).expanduser() / 'storage'}"
    return ObjectStoragePath(base)


def try_folder(dag_id: str, key: str, run_id: str, try_number: int) -> ObjectStoragePath:
    """The folder of one try of one run (``key``: the day or the week it is about)."""
    return storage_base() / dag_id / key / run_id / f"try-{try_number}"


def read_text(location: str) -> str:
    """A text file named by a URI (``s3://...``, ``file://...``) or a local path."""
    return (ObjectStoragePath(location) if "://" in location else Path(location)).read_text()
