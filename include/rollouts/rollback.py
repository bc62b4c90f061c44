"""Rolling back a rollout that has ended (``gpu_bundle_rollback``): its fleet goes back
to the bundle it had before, through a new ``gpu_bundle_rollout`` that refreshes, verifies
and judges the nodes like any other - but only while the pointer still holds what that
rollout set. Anyone who moved it since made a newer decision, and undoing the old rollout
would silently undo theirs too."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from gpu_worker import layout
from include.errors import InvalidRequest
from include.naming.fleet import Fleet
from include.rollouts.analysis import Thresholds
from include.rollouts.rollout import REFRESHING, checked_checkpoints, is_run_id
from include.versions import refuse_newer


@dataclass(frozen=True)
class RollbackRequest:
    fleet: Fleet
    rollout_run_id: str
    checkpoint_percentages: tuple[int, ...]
    thresholds: Thresholds

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RollbackRequest:
        fleet = Fleet.of(params)
        run_id = params.get("rollout_run_id")
        if not is_run_id(run_id):
            raise InvalidRequest(f"rollout_run_id {run_id!r} is not a run id of gpu_bundle_rollout")
        checkpoints = checked_checkpoints(params.get("checkpoint_percentages") or [])
        return cls(fleet, run_id, checkpoints, Thresholds.from_params(params))

    #: the form :meth:`serialize` writes; :meth:`deserialize` refuses a newer one
    __version__ = 1

    def serialize(self) -> dict[str, Any]:
        """The request as it travels to the run's later tasks (Airflow's serde, in XCom)."""
        return {
            "fleet_stage": self.fleet.stage,
            "fleet_slug": self.fleet.slug,
            "rollout_run_id": self.rollout_run_id,
            "checkpoint_percentages": list(self.checkpoint_percentages),
            "thresholds": asdict(self.thresholds),
        }

    @staticmethod
    def deserialize(data: dict[str, Any], version: int) -> RollbackRequest:
        refuse_newer(RollbackRequest, version)
        return RollbackRequest(
            Fleet(data["fleet_stage"], data["fleet_slug"]),
            data["rollout_run_id"],
            tuple(data["checkpoint_percentages"]),
            Thresholds(**data["thresholds"]),
        )


def refusal(
    fleet: Fleet,
    run_id: str,
    record: dict[str, Any] | None,
    pointer: str | None,
    moved_by: str,
    going_to: str | None = None,
) -> str | None:
    """Why rollout ``run_id`` of ``fleet`` (``record``: its audit record, None when there is
    none) can't be rolled back while the fleet's pointer holds ``pointer``; None when it
    can. ``moved_by`` names who wrote the pointer last; ``going_to``, when given, is the
    pointer value the rollback would write, which must be what the fleet had before."""
    if record is None:
        return f"there is no audit record of a rollout {run_id} on {fleet}"
    if record.get("result") != "success":
        return f"rollout {run_id} ended {record.get('result')}: it changed nothing, or was rolled back then"
    if record.get("strategy") not in (*REFRESHING, "pointer_only"):
        return (
            f"rollout {run_id} installed a bundle on one dev node ({record.get('strategy')}): "
            "roll that node back with a dev_node rollout of the bundle it should run"
        )
    before = record.get("from_bundle")
    if not before or before == layout.NO_ACTIVE_BUNDLE:
        return f"rollout {run_id} gave {fleet} its first bundle: there is nothing to go back to"
    if going_to is not None and going_to != before:
        return f"rollout {run_id} went from {before}, not {going_to}: a rollback goes back to {before}"
    if pointer != record.get("to_bundle"):
        return (
            f"{fleet.active_bundle} holds {pointer}, not {record.get('to_bundle')} that rollout {run_id} "
            f"set: {moved_by} moved it since. Roll out the bundle the fleet should run instead"
        )
    return None


def rollout_conf(request: RollbackRequest, record: dict[str, Any], aws_conn_id: str) -> dict[str, Any]:
    """The conf of the ``gpu_bundle_rollout`` run that rolls ``record``'s rollout back."""
    return {
        "fleet_stage": request.fleet.stage,
        "fleet_slug": request.fleet.slug,
        "bundle_id": layout.bundle_id_of(record["from_bundle"]),
        "strategy": "refresh",
        "checkpoint_percentages": list(request.checkpoint_percentages),
        **asdict(request.thresholds),
        "rollback_of": request.rollout_run_id,
        "aws_conn_id": aws_conn_id,
    }


def pointer_writer(records: list[dict[str, Any]], pointer: str | None, history: list[dict[str, Any]]) -> str:
    """Who wrote ``pointer`` last: the newest successful rollout that set it (by its audit
    record), else what SSM's parameter history says of the current version."""
    setting = [r for r in records if r.get("to_bundle") == pointer and r.get("result") == "success"]
    if setting:
        newest = max(setting, key=lambda r: r.get("ended_at", ""))
        return f"rollout {newest['run_id']} (triggered by {newest.get('triggered_by', 'unknown')})"
    if history:
        last = history[-1]
        return (
            f"{last.get('LastModifiedUser', 'someone')} (version {last.get('Version')}, "
            f"{last.get('LastModifiedDate')}, outside gpu_bundle_rollout)"
        )
    return "someone"


def rollback_run_id(rollback_run: str) -> str:
    """The run id of the ``gpu_bundle_rollout`` a rollback triggers: named after it, so a
    cleared trigger task finds its rollout instead of starting a second one."""
    return f"rollback__{rollback_run}"
