"""The immutable record a rollout leaves, and its signature for the backend."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from include.naming.fleet import Fleet
from include.rollouts.rollout import RolloutRequest


def audit_record(
    request: RolloutRequest,
    *,
    run_id: str,
    triggered_by: str | None,
    from_bundle: str | None,
    result: str,
    started_at: str,
    ended_at: str,
    task_states: dict[str, str],
    rolled_back: list[str],
    analyses: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The record of a rollout that ran: what moved where, each task's end, what was
    rolled back, every analysis of the fleet's metrics, and the rollout it undid."""
    return {
        "event": "bundle_rollout",
        "run_id": run_id,
        "triggered_by": triggered_by or "unknown",
        "fleet_stage": request.fleet.stage,
        "fleet_slug": request.fleet.slug,
        "from_bundle": from_bundle,
        "to_bundle": request.pointer_value,
        "strategy": request.strategy,
        "instance_id": request.instance_id,
        "result": result,
        "started_at": started_at,
        "ended_at": ended_at,
        "tasks": task_states,
        "rolled_back": rolled_back,
        "analyses": analyses or [],
        "rollback_of": request.rollback_of,
    }


def refused_record(
    fleet: Fleet,
    *,
    run_id: str,
    triggered_by: str | None,
    reason: str,
    conf: dict[str, Any],
    started_at: str,
    ended_at: str,
) -> dict[str, Any]:
    """A rollout refused by its first task: who asked for what, and why nothing changed."""
    return {
        "event": "bundle_rollout",
        "run_id": run_id,
        "triggered_by": triggered_by or "unknown",
        "fleet_stage": fleet.stage,
        "fleet_slug": fleet.slug,
        "result": "refused",
        "reason": reason,
        "conf": conf,
        "started_at": started_at,
        "ended_at": ended_at,
    }


def signature_headers(body: bytes, secret: str, timestamp: int) -> dict[str, str]:
    """HMAC-SHA256 over ``<timestamp>.<body>`` with the asset-ops secret, so the backend
    can check both who sent the record and that it is fresh."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-BP-Timestamp": str(timestamp),
        "X-BP-Signature": f"sha256={digest}",
    }
