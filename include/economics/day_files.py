"""The day's tables as files a later task reads: what the compute step promises (a
manifest, written last) and the check a publish makes before it touches the warehouse.

A publish refuses a day unless every table is there and was written by this very run:
a folder left by another run, or half-written by a try that was killed, publishes
nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from include.economics import warehouse

MANIFEST = "_manifest.json"


def manifest(run_id: str, try_number: int, day: str, rows: dict[str, int]) -> dict[str, Any]:
    return {"run_id": run_id, "try": try_number, "day": day, "tables": dict(sorted(rows.items()))}


def problems(found: dict[str, Any] | None, *, run_id: str, day: str, present: Iterable[str]) -> list[str]:
    """Why the folder can't be published (empty: it can): a missing manifest, another run's
    or day's files, a table the manifest or the folder lacks."""
    if found is None:
        return [f"{MANIFEST} is missing (the computing try did not finish)"]
    issues = []
    if found.get("run_id") != run_id:
        issues.append(f"the files were written by run {found.get('run_id')!r}, not this run")
    if found.get("day") != day:
        issues.append(f"the files are of {found.get('day')}, not {day}")
    promised, there = set(found.get("tables", {})), set(present)
    missing = [name for name in warehouse.TABLES if name not in promised or name not in there]
    if missing:
        issues.append(f"table(s) missing: {', '.join(missing)}")
    return issues
