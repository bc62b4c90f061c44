"""Rolling a model bundle out to a fleet: the request, the lock, node reports, the
rollback summary and the audit record.

Replaces seed 004's hand runbook (activate in the admin UI → bake → roll the ASG) and
``apply-comfyui-bundle.yml``. Plain Python: the DAG ``gpu_bundle_rollout`` wires it to
the AWS hooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from gpu_worker import layout, manifest
from include import resource_names, ssm_paths

STRATEGIES = ("pointer_only", "dev_node", "refresh", "bake_and_refresh")
REFRESHING = ("refresh", "bake_and_refresh")
INSTANCE_ID_PATTERN = r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$"
BUNDLE_ID_PATTERN = f"^{manifest.BUNDLE_ID.pattern}$"
#: The DAG a bake_and_refresh rollout triggers first.
AMI_DAG = "gpu_ami_build_and_bake"

_INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN)


class InvalidRequest(ValueError):
    """Params that fail a domain check; nothing has been called yet."""


class RolloutLocked(RuntimeError):
    """Another rollout of the same fleet holds the lock."""


@dataclass(frozen=True)
class RolloutRequest:
    fleet_stage: str
    fleet_slug: str
    bundle_id: str
    strategy: str
    instance_id: str | None
    min_healthy_percentage: int
    checkpoint_percentages: tuple[int, ...]
    auto_rollback: bool

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RolloutRequest:
        try:
            stage = ssm_paths.check_fleet_stage(params["fleet_stage"])
            slug = ssm_paths.check_fleet_slug(params["fleet_slug"])
        except ssm_paths.InvalidFleetName as error:
            raise InvalidRequest(str(error)) from None
        bundle_id = params.get("bundle_id")
        if not isinstance(bundle_id, str) or not manifest.BUNDLE_ID.fullmatch(bundle_id):
            raise InvalidRequest(f"bundle_id {bundle_id!r} must be 1-128 letters, digits, '.', '_' or '-'")
        strategy = params.get("strategy")
        if strategy not in STRATEGIES:
            raise InvalidRequest(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
        instance_id = params.get("instance_id") or None
        if strategy == "dev_node":
            if not isinstance(instance_id, str) or not _INSTANCE_ID.fullmatch(instance_id):
                raise InvalidRequest(
                    f"strategy dev_node needs an instance_id like i-0123456789abcdef0, got {instance_id!r}"
                )
        elif instance_id is not None:
            raise InvalidRequest(f"instance_id is only for strategy dev_node, not {strategy}")
        healthy = params.get("min_healthy_percentage", 90)
        if isinstance(healthy, bool) or not isinstance(healthy, int) or not 0 <= healthy <= 100:
            raise InvalidRequest(f"min_healthy_percentage must be a whole number from 0 to 100, got {healthy!r}")
        checkpoints = params.get("checkpoint_percentages") or []
        if (
            not isinstance(checkpoints, list)
            or any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 100 for c in checkpoints)
            or checkpoints != sorted(set(checkpoints))
            or (checkpoints and checkpoints[-1] != 100)
        ):
            raise InvalidRequest(
                f"checkpoint_percentages must rise strictly from 1 to 100 and end at 100, got {checkpoints!r}"
            )
        auto_rollback = params.get("auto_rollback", True)
        if not isinstance(auto_rollback, bool):
            raise InvalidRequest(f"auto_rollback must be true or false, got {auto_rollback!r}")
        return cls(stage, slug, bundle_id, strategy, instance_id, healthy, tuple(checkpoints), auto_rollback)

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "checkpoint_percentages": list(self.checkpoint_percentages),
            "bundle_prefix": layout.bundle_prefix(self.bundle_id),
            "pointer": ssm_paths.active_bundle(self.fleet_stage, self.fleet_slug),
            "lock": ssm_paths.rollout_lock(self.fleet_stage, self.fleet_slug),
            "desired_config_parameter": ssm_paths.desired_config(self.fleet_stage, self.fleet_slug),
            "models_bucket_parameter": ssm_paths.models_bucket(),
            "auto_scaling_group": resource_names.fleet_asg(self.fleet_stage, self.fleet_slug),
            "apply_document": resource_names.bundle_apply_document(self.fleet_stage),
            "status_document": resource_names.bundle_status_document(self.fleet_stage),
            "refreshes": self.strategy in REFRESHING,
        }


def refresh_preferences(request: dict[str, Any], warmup_seconds: int) -> dict[str, Any]:
    """StartInstanceRefresh preferences. AWS can't roll a refresh back when the launch
    template resolves its AMI from SSM (ours does), so AutoRollback stays off and the
    rollout rolls back itself: pointer restored, refresh cancelled, replaced nodes
    refreshed again onto the restored bundle."""
    preferences: dict[str, Any] = {
        "MinHealthyPercentage": request["min_healthy_percentage"],
        "InstanceWarmup": warmup_seconds,
        "SkipMatching": False,
        "AutoRollback": False,
    }
    if request["checkpoint_percentages"]:
        preferences["CheckpointPercentages"] = request["checkpoint_percentages"]
        preferences["CheckpointDelay"] = warmup_seconds
    return preferences


def lock_value(run_id: str, bundle_id: str) -> str:
    return json.dumps({"run_id": run_id, "bundle_id": bundle_id}, sort_keys=True)


def lock_holder(value: str) -> dict[str, str]:
    try:
        holder = json.loads(value)
    except json.JSONDecodeError:
        return {"run_id": "?", "bundle_id": "?"}
    return holder if isinstance(holder, dict) else {"run_id": "?", "bundle_id": "?"}


def node_report_problems(reports: dict[str, dict[str, Any]], bundle_id: str) -> list[str]:
    """``reports``: GetCommandInvocation results of the status document, by instance.
    Every node must have answered and must report ``bundle_id`` as active."""
    problems = []
    for instance_id, invocation in sorted(reports.items()):
        if invocation.get("Status") != "Success":
            problems.append(
                f"{instance_id} did not report ({invocation.get('Status')}: "
                f"{(invocation.get('StandardErrorContent') or '').strip() or 'no output'})"
            )
            continue
        try:
            active = json.loads(invocation.get("StandardOutputContent") or "{}").get("active_bundle_id")
        except (json.JSONDecodeError, AttributeError):
            problems.append(f"{instance_id} answered something that is not the status JSON")
            continue
        if active != bundle_id:
            problems.append(f"{instance_id} reports bundle {active or 'none'}, not {bundle_id}")
    return problems


def failure_summary(request: dict[str, Any], failed_tasks: list[str], undone: list[str]) -> str:
    """The one paragraph a failed rollout ends with: what failed, what was rolled back."""
    what = ", ".join(failed_tasks) or "an upstream task"
    rolled_back = " ".join(f"{step[0].upper()}{step[1:]}." for step in undone) or "Nothing had changed."
    return (
        f"Rollout of bundle {request['bundle_id']} to {request['fleet_stage']}/{request['fleet_slug']} "
        f"({request['strategy']}) failed in {what}. {rolled_back}"
    )


def audit_record(
    request: dict[str, Any],
    *,
    run_id: str,
    triggered_by: str | None,
    from_bundle: str | None,
    result: str,
    started_at: str,
    ended_at: str,
    task_states: dict[str, str],
    rolled_back: list[str],
) -> dict[str, Any]:
    return {
        "event": "bundle_rollout",
        "run_id": run_id,
        "triggered_by": triggered_by or "unknown",
        "fleet_stage": request["fleet_stage"],
        "fleet_slug": request["fleet_slug"],
        "from_bundle": from_bundle,
        "to_bundle": request["bundle_prefix"],
        "strategy": request["strategy"],
        "instance_id": request["instance_id"],
        "result": result,
        "started_at": started_at,
        "ended_at": ended_at,
        "tasks": task_states,
        "rolled_back": rolled_back,
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
