"""The per-fleet lock: who holds it, read back from its value."""

from __future__ import annotations

import json

UNKNOWN_HOLDER = {"run_id": "?", "bundle_id": "?"}


def lock_value(run_id: str, bundle_id: str) -> str:
    return json.dumps({"run_id": run_id, "bundle_id": bundle_id}, sort_keys=True)


def lock_holder(value: str) -> dict[str, str]:
    try:
        holder = json.loads(value)
    except json.JSONDecodeError:
        return dict(UNKNOWN_HOLDER)
    return holder if isinstance(holder, dict) else dict(UNKNOWN_HOLDER)
