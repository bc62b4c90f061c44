"""``[core] hostname_callable`` of the local Celery workers: two workers on one machine
report the names two hosts would (``BP_WORKER_NAME``), so a run's task instances show
which worker ran each task."""

from __future__ import annotations

import os


def worker_name() -> str:
    return os.environ["BP_WORKER_NAME"]
