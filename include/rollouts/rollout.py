"""Rolling a model bundle out to a fleet: the request, the refresh, node reports and the
rollback summary.

Replaces seed 004's hand runbook (activate in the admin UI → bake → roll the ASG) and
``apply-comfyui-bundle.yml``. Plain Python: ``bp_tasks.gpu_bundle_rollout`` wires it to
the AWS hooks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gpu_worker import layout, manifest
from include.errors import InvalidRequest
from include.naming import platform
from include.naming.fleet import Fleet
from include.rollouts.analysis import Thresholds
from include.versions import refuse_newer

STRATEGIES = ("pointer_only", "dev_node", "refresh", "bake_and_refresh")
REFRESHING = ("refresh", "bake_and_refresh")
INSTANCE_ID_PATTERN = r"^i-[0-9a-f]{8}(?:[0-9a-f]{9})?$"
BUNDLE_ID_PATTERN = f"^{manifest.BUNDLE_ID.pattern}$"

_INSTANCE_ID = re.compile(INSTANCE_ID_PATTERN)
#: Airflow run ids (manual__2026-11-30T08:30:00+00:00, scheduled__..., or one given by the API)
RUN_ID_PATTERN = r"^[A-Za-z0-9_.:+-]{1,250}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)


@dataclass(frozen=True)
class RolloutRequest:
    fleet: Fleet
    bundle_id: str
    strategy: str
    instance_id: str | None
    min_healthy_percentage: int
    checkpoint_percentages: tuple[int, ...]
    auto_rollback: bool
    thresholds: Thresholds = field(default_factory=Thresholds)
    #: the run id of the rollout this one undoes (gpu_bundle_rollback), else None
    rollback_of: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RolloutRequest:
        fleet = Fleet.of(params)
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
        checkpoints = checked_checkpoints(params.get("checkpoint_percentages") or [])
        auto_rollback = params.get("auto_rollback", True)
        if not isinstance(auto_rollback, bool):
            raise InvalidRequest(f"auto_rollback must be true or false, got {auto_rollback!r}")
        rollback_of = params.get("rollback_of") or None
        if rollback_of is not None and not is_run_id(rollback_of):
            raise InvalidRequest(f"rollback_of {rollback_of!r} is not a run id")
        if rollback_of is not None and strategy not in REFRESHING:
            raise InvalidRequest(f"rollback_of is for the refresh strategies, not {strategy}")
        return cls(
            fleet,
            bundle_id,
            strategy,
            instance_id,
            healthy,
            checkpoints,
            auto_rollback,
            Thresholds.from_params(params),
            rollback_of,
        )

    @property
    def pointer_value(self) -> str:
        """What the fleet's ``active_bundle`` pointer holds once the bundle is live."""
        return layout.bundle_prefix(self.bundle_id)

    def dev_node_command(self, pointer: str) -> dict[str, Any]:
        """SendCommand arguments of the fleet's apply document on the dev node. Its
        parameters are the *names* of SSM parameters (checked by SSM against the
        document's allowedPattern): no text from the trigger form reaches a shell.
        ``pointer`` is the dev node's own (:attr:`DevNode.active_bundle`): an install on
        one node never moves what the fleet's nodes boot with."""
        return {
            "InstanceIds": [self.instance_id],
            "Parameters": {
                "bucketParameter": [platform.models_bucket_parameter()],
                "prefixParameter": [pointer],
            },
            "Comment": f"gpu_bundle_rollout of bundle {self.bundle_id}"[:100],
        }

    #: the form :meth:`serialize` writes; :meth:`deserialize` refuses a newer one
    __version__ = 1

    def serialize(self) -> dict[str, Any]:
        """The request as it travels between tasks (Airflow's serde, in XCom): checked once
        by :meth:`from_params` in the run's first task, taken back as it is by
        :meth:`deserialize` in every later one."""
        return {
            "fleet_stage": self.fleet.stage,
            "fleet_slug": self.fleet.slug,
            "bundle_id": self.bundle_id,
            "strategy": self.strategy,
            "instance_id": self.instance_id,
            "min_healthy_percentage": self.min_healthy_percentage,
            "checkpoint_percentages": list(self.checkpoint_percentages),
            "auto_rollback": self.auto_rollback,
            "thresholds": asdict(self.thresholds),
            "rollback_of": self.rollback_of,
        }

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> RolloutRequest:
        refuse_newer(RolloutRequest, version)
        return RolloutRequest(
            Fleet(data["fleet_stage"], data["fleet_slug"]),
            data["bundle_id"],
            data["strategy"],
            data["instance_id"],
            data["min_healthy_percentage"],
            tuple(data["checkpoint_percentages"]),
            data["auto_rollback"],
            Thresholds(**data["thresholds"]),
            data["rollback_of"],
        )

    @property
    def lock(self) -> str:
        """The fleet's change lock (:attr:`Fleet.lock`)."""
        return self.fleet.lock

    def wiring(self) -> dict[str, Any]:
        """What the DAG's operators and branches take from the request
        (``validate_request`` pushes those its DAG reads as XCom keys beside the request): the fleet's names, the
        bundle and how it goes out, the verdict's thresholds."""
        return {
            **self.fleet.names(),
            "bundle_id": self.bundle_id,
            "strategy": self.strategy,
            "checkpoint_percentages": list(self.checkpoint_percentages),
            "thresholds": asdict(self.thresholds),
            "pointer_value": self.pointer_value,
        }


def checked_checkpoints(checkpoints: Any) -> tuple[int, ...]:
    """Checkpoint percentages as StartInstanceRefresh takes them, or InvalidRequest."""
    if (
        not isinstance(checkpoints, list)
        or any(isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 100 for c in checkpoints)
        or checkpoints != sorted(set(checkpoints))
        or (checkpoints and checkpoints[-1] != 100)
    ):
        raise InvalidRequest(
            f"checkpoint_percentages must rise strictly from 1 to 100 and end at 100, got {checkpoints!r}"
        )
    return tuple(checkpoints)


def is_run_id(value: Any) -> bool:
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def dev_node_problem(
    instance_id: str, instance: dict[str, Any] | None, stage: str, registered: Mapping[str, object]
) -> str | None:
    """Why ``instance`` (EC2 DescribeInstances' entry, None when absent) may not take a
    dev_node install for a fleet of ``stage``, or None: it must be running, tagged as a
    dev node of that stage (a staging rollout never reaches a production instance) and in
    the stage's dev-node registry (``registered``: instance id -> node; ``gpu_dev_node``)."""
    if instance is None:
        return f"instance {instance_id} does not exist"
    tags = platform.tags_of(instance)
    state = (instance.get("State") or {}).get("Name")
    if tags.get(platform.ROLE_TAG) != platform.DEV_NODE_ROLE:
        return f"instance {instance_id} is not a dev node (tag {platform.ROLE_TAG}={platform.DEV_NODE_ROLE} is missing)"
    if tags.get(platform.STAGE_TAG) != stage:
        return f"instance {instance_id} is a dev node of stage {tags.get(platform.STAGE_TAG)!r}, not {stage}"
    if state != "running":
        return f"instance {instance_id} is {state}, not running"
    if instance_id not in registered:
        return f"instance {instance_id} is not a registered dev node of {stage} (create dev nodes with gpu_dev_node)"
    return None


def bake_run_id(rollout_run_id: str) -> str:
    """The run id of the AMI bake a ``bake_and_refresh`` rollout triggers: named after the
    rollout, so the fleet lock can let that one run act under the rollout's lock."""
    return f"rollout_bake__{rollout_run_id}"


#: Every instance refresh of ours replaces the nodes the node agent protects from scale-in
#: while they run a prompt: AWS's default (``Wait``) would hold the refresh up to an hour
#: per busy node and then fail it. Scale-in protection is for scale-in; a rollout replaces.
REPLACE_PROTECTED_NODES = {"ScaleInProtectedInstances": "Refresh"}


def fleet_refresh_preferences(warmup_seconds: int, min_healthy_percentage: int = 90) -> dict[str, Any]:
    """StartInstanceRefresh preferences of every refresh of a fleet (a bundle rollout, a
    new or restored AMI): the fleet's own warmup; every node replaced, scale-in protected
    ones too (:data:`REPLACE_PROTECTED_NODES`). AWS can't roll a refresh back when the
    launch template resolves its AMI from SSM (ours does), so AutoRollback stays off and
    the DAGs roll back themselves (pointer restored, refresh cancelled, nodes refreshed
    again)."""
    return {
        "MinHealthyPercentage": min_healthy_percentage,
        "InstanceWarmup": warmup_seconds,
        "SkipMatching": False,
        "AutoRollback": False,
        **REPLACE_PROTECTED_NODES,
    }


def refresh_preferences(
    request: RolloutRequest, warmup_seconds: int, checkpoints: tuple[int, ...] | None = None
) -> dict[str, Any]:
    """A rollout's refresh: :func:`fleet_refresh_preferences` with the request's healthy
    percentage, and at each checkpoint a pause long enough for the bake window and its
    verdict (:meth:`Thresholds.checkpoint_delay_seconds`). ``checkpoints``: the
    request's, unless a continued refresh has fewer left."""
    preferences = fleet_refresh_preferences(warmup_seconds, request.min_healthy_percentage)
    checkpoints = request.checkpoint_percentages if checkpoints is None else checkpoints
    if checkpoints:
        preferences["CheckpointPercentages"] = list(checkpoints)
        preferences["CheckpointDelay"] = request.thresholds.checkpoint_delay_seconds()
    return preferences


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


def failure_summary(request: RolloutRequest, failed_tasks: list[str], undone: list[str], why: str = "") -> str:
    """The one paragraph a failed rollout ends with: what failed and why, what was rolled back."""
    what = ", ".join(failed_tasks) or "an upstream task"
    rolled_back = " ".join(f"{step[0].upper()}{step[1:]}." for step in undone) or "Nothing had changed."
    because = f" {why.rstrip('.')}." if why else ""
    return (
        f"Rollout of bundle {request.bundle_id} to {request.fleet} ({request.strategy}) failed in {what}."
        f"{because} {rolled_back}"
    )
