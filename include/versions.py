"""Requests that travel between a run's tasks in their serialized form (Airflow's serde,
in XCom) carry the version of that form: a task running older code than the one that
wrote it (a worker not yet upgraded) must refuse it rather than misread it."""

from __future__ import annotations


def refuse_newer(cls: type, version: int) -> None:
    """TypeError (serde's error for a value it can't take back) when ``version`` is newer
    than ``cls.__version__``."""
    if int(version) > cls.__version__:
        raise TypeError(f"{cls.__name__} version {version} is newer than this code's {cls.__version__}")
