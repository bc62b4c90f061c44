"""Which of a fleet's AMIs to keep, and why (seed 003: nothing ever cleaned up old AMIs
and snapshots, and their storage is billed forever).

Per fleet the newest ``keep_newest`` images are kept, plus every image something still
uses: the fleet's SSM AMI pointer (what new instances resolve), a launch template
version, or an instance that exists. Everything else may be deregistered, with its
snapshots. The decision is pure so it can be read, tested and dry-run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: Provenance tags every fleet AMI carries (packer/comfyui-worker.pkr.hcl writes them).
FLEET_STAGE_TAG = "fleet_stage"
FLEET_SLUG_TAG = "fleet_slug"
BUNDLE_ID_TAG = "bundle_id"
BASE_AMI_TAG = "base_ami"
PREVIOUS_AMI_TAG = "previous_ami"
GIT_SHA_TAG = "git_sha"
AIRFLOW_RUN_TAG = "airflow_run_id"


@dataclass(frozen=True)
class Decision:
    image_id: str
    name: str
    created: str
    keep: bool
    reason: str
    snapshot_ids: tuple[str, ...] = ()


@dataclass
class RetentionPlan:
    decisions: list[Decision] = field(default_factory=list)

    @property
    def to_delete(self) -> list[Decision]:
        return [d for d in self.decisions if not d.keep]

    @property
    def to_keep(self) -> list[Decision]:
        return [d for d in self.decisions if d.keep]

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        return [(d.image_id, d.created, "keep" if d.keep else "delete", d.reason, d.name) for d in self.decisions]


def snapshot_ids(image: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(
        mapping["Ebs"]["SnapshotId"]
        for mapping in image.get("BlockDeviceMappings", [])
        if mapping.get("Ebs", {}).get("SnapshotId")
    )


def plan_retention(
    images: Iterable[Mapping[str, Any]],
    *,
    keep_newest: int,
    in_use: Mapping[str, str],
) -> RetentionPlan:
    """Decide for each image (describe_images dicts of one fleet).

    :param keep_newest: how many of the newest images to keep regardless of use (>= 1).
    :param in_use: image id -> what uses it (the reason it is kept).
    """
    if keep_newest < 1:
        raise ValueError("keep_newest must be at least 1: the newest image is never deleted")
    ordered = sorted(images, key=lambda image: (image.get("CreationDate", ""), image["ImageId"]), reverse=True)
    plan = RetentionPlan()
    for rank, image in enumerate(ordered):
        image_id = image["ImageId"]
        if image_id in in_use:
            keep, reason = True, in_use[image_id]
        elif rank < keep_newest:
            keep, reason = True, f"among the newest {keep_newest}"
        else:
            keep, reason = False, f"older than the newest {keep_newest} and not in use"
        plan.decisions.append(
            Decision(
                image_id=image_id,
                name=image.get("Name", ""),
                created=image.get("CreationDate", ""),
                keep=keep,
                reason=reason,
                snapshot_ids=snapshot_ids(image),
            )
        )
    return plan
