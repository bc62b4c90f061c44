"""Revoking a bad GPU image everywhere (``gpu_ami_revoke``), as plain decisions.

HCP Packer's revocation is the model: once revoked, nothing new launches from an image.
Here that means every fleet pointer that names the image goes back to the image it
replaced *in that pointer* - read from the pointer's own SSM history (the version before
the image was written), never "whatever is current" - and the image is tagged revoked,
so ``promote_ami`` refuses it from then on. A pointer that held the image once but has
moved since is someone else's change: it is left alone and reported.

Revocation is inherited, as HCP Packer's is: the images baked *from* a revoked one (their
``base_ami`` tag, and theirs in turn) are revoked with it, under the same approval, locks
and audit. A pointer naming any image of that tree goes back to the newest image it held
before, outside the tree; the plan shows the whole tree before anything changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from include import approvals
from include.errors import InvalidRequest
from include.naming import platform
from include.naming.fleet import Fleet
from include.versions import refuse_newer

IMAGE_ID_PATTERN = r"^ami-[0-9a-f]{8}(?:[0-9a-f]{9})?$"
REASON_MAX_LENGTH = 200
#: tags a revoked image carries (``promote_ami`` refuses an image with ``revoked``)
REVOKED_TAG = "revoked"
REVOKED_REASON_TAG = "revoked_reason"
REVOKED_BY_TAG = "revoked_by_run"
#: the provenance every image this project builds carries (the Packer template's tags)
PROVENANCE_TAGS = ("fleet_stage", "fleet_slug", "airflow_run_id")
#: one line of letters, digits, spaces and punctuation: it becomes an EC2 tag value
REASON_PATTERN = r"^[\w .,:;()/#@+=-]+$"
_REASON = re.compile(REASON_PATTERN)


class RevocationRefused(Exception):
    """The revocation can't be done as asked; nothing was changed."""


@dataclass(frozen=True)
class RevocationRequest:
    image_id: str
    reason: str

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> RevocationRequest:
        image_id, reason = params.get("image_id"), params.get("reason")
        if not isinstance(image_id, str) or not re.fullmatch(IMAGE_ID_PATTERN, image_id):
            raise InvalidRequest(f"image_id {image_id!r} is not an AMI id like ami-0123456789abcdef0")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidRequest("reason is required: say why the image is revoked (it is tagged on the image)")
        reason = reason.strip()
        if len(reason) > REASON_MAX_LENGTH or not _REASON.fullmatch(reason):
            raise InvalidRequest(
                f"reason must be one line of at most {REASON_MAX_LENGTH} letters, digits, spaces and "
                "punctuation (it becomes an EC2 tag value)"
            )
        return cls(image_id, reason)

    #: travels between the run's tasks as itself: Airflow's serde writes a dataclass's
    #: fields with this version and refuses a newer one
    __version__ = 1


@dataclass(frozen=True)
class PointerRestore:
    """One pointer going back: expected to still be at ``version`` (naming ``revoked``, an
    image of the revoked tree)."""

    fleet_stage: str
    fleet_slug: str
    pointer: str
    version: int
    previous_image: str
    revoked: str = ""

    @property
    def fleet(self) -> Fleet:
        return Fleet(self.fleet_stage, self.fleet_slug)


@dataclass(frozen=True)
class MovedPointer:
    """A pointer that held the image and has been moved by someone since: left alone."""

    pointer: str
    now: str
    version: int
    modified_by: str


@dataclass(frozen=True)
class Descendant:
    """An image baked from a revoked one (its ``base_ami``), revoked with it."""

    image_id: str
    base_ami: str
    stage: str


@dataclass(frozen=True)
class RevocationPlan:
    image_id: str
    image_stage: str
    restores: tuple[PointerRestore, ...]
    moved: tuple[MovedPointer, ...]
    descendants: tuple[Descendant, ...] = ()

    @property
    def tree(self) -> tuple[str, ...]:
        """Every image revoked: the one asked, then those baked from it."""
        return (self.image_id, *(d.image_id for d in self.descendants))

    @property
    def needs_approval(self) -> bool:
        stages = {self.image_stage, *(d.stage for d in self.descendants), *(r.fleet_stage for r in self.restores)}
        return any(approvals.needs_approval(stage) for stage in stages)

    #: the form :meth:`serialize` writes; :meth:`deserialize` refuses a newer one (2: the descendants)
    __version__ = 2

    def serialize(self) -> dict[str, Any]:
        """The plan as it travels to the run's later tasks (Airflow's serde, in XCom)."""
        return {
            "image_id": self.image_id,
            "image_stage": self.image_stage,
            "restores": [asdict(r) for r in self.restores],
            "moved": [asdict(m) for m in self.moved],
            "descendants": [asdict(d) for d in self.descendants],
        }

    @staticmethod
    def deserialize(data: Mapping[str, Any], version: int) -> RevocationPlan:
        refuse_newer(RevocationPlan, version)
        return RevocationPlan(
            image_id=data["image_id"],
            image_stage=data["image_stage"],
            restores=tuple(PointerRestore(**r) for r in data["restores"]),
            moved=tuple(MovedPointer(**m) for m in data["moved"]),
            descendants=tuple(Descendant(**d) for d in data.get("descendants", ())),
        )

    def lines(self) -> list[str]:
        said = [
            f"{d.image_id}: baked from {d.base_ami} ({d.stage or 'no stage'}), revoked with it"
            for d in self.descendants
        ]
        said += [
            f"{r.pointer}: {r.revoked or self.image_id} -> {r.previous_image} (at version {r.version})"
            for r in self.restores
        ]
        said += [f"{m.pointer}: left alone, moved since to {m.now} by {m.modified_by}" for m in self.moved]
        return said if self.restores or self.moved else [*said, f"no fleet pointer names {', '.join(self.tree)}"]


def check_provenance(image_id: str, image: Mapping[str, Any] | None) -> dict[str, str]:
    """The image's tags, when it exists and is one of ours; refused otherwise."""
    if image is None:
        raise RevocationRefused(f"AMI {image_id} does not exist in this account and region")
    tags = platform.tags_of(image)
    missing = [key for key in PROVENANCE_TAGS if not tags.get(key)]
    if missing:
        raise RevocationRefused(
            f"AMI {image_id} ({image.get('Name', '')}) is not an image this platform built: it has no "
            f"{', '.join(missing)} tag (gpu_ami_build_and_bake tags every image it builds)"
        )
    return tags


def descendants_of(image_id: str, baked_from: Callable[[str], Sequence[Mapping[str, Any]]]) -> list[Descendant]:
    """The images baked from ``image_id``, and from those in turn: ``baked_from(parent)``
    gives this account's images whose ``base_ami`` tag is ``parent``. Breadth first, each
    image once (a tag loop ends)."""
    found: list[Descendant] = []
    seen, parents = {image_id}, [image_id]
    while parents:
        parent = parents.pop(0)
        for image in sorted(baked_from(parent), key=lambda i: i["ImageId"]):
            if image["ImageId"] in seen:
                continue
            seen.add(image["ImageId"])
            found.append(Descendant(image["ImageId"], parent, platform.tags_of(image).get("fleet_stage", "")))
            parents.append(image["ImageId"])
    return found


def plan(
    image_id: str,
    image_tags: Mapping[str, str],
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    descendants: Sequence[Descendant] = (),
) -> RevocationPlan:
    """What a revocation of ``image_id`` and its ``descendants`` does to each fleet pointer,
    from each pointer's history (GetParameterHistory: ``Value``, ``Version``,
    ``LastModifiedUser``, oldest first): one naming an image of the tree goes back to the
    newest value it had before that is outside the tree.

    Refused, changing nothing, when a pointer naming the tree has no such value: the tree's
    images are the only ones that fleet ever had."""
    tree = {image_id, *(d.image_id for d in descendants)}
    restores, moved = [], []
    for name, history in sorted(histories.items()):
        fleet = Fleet.from_ami_pointer(name)
        versions = sorted(history, key=lambda version: int(version["Version"]))
        if fleet is None or not any(v["Value"] in tree for v in versions):
            continue
        latest = versions[-1]
        if latest["Value"] not in tree:
            moved.append(
                MovedPointer(name, latest["Value"], int(latest["Version"]), str(latest.get("LastModifiedUser", "?")))
            )
            continue
        earlier = [v["Value"] for v in versions[:-1] if v["Value"] not in tree]
        if not earlier:
            only = (
                f"{image_id} is the only image {fleet} ever had"
                if tree == {image_id}
                else f"{fleet} never had an image but {image_id} and those baked from it"
            )
            raise RevocationRefused(
                f"{only} ({name} has no earlier value outside them): there is nothing to go back to. Build a base "
                f"image first (gpu_ami_build_and_bake mode=base_and_bake for {fleet}), then revoke this one"
            )
        restores.append(
            PointerRestore(fleet.stage, fleet.slug, name, int(latest["Version"]), earlier[-1], latest["Value"])
        )
    return RevocationPlan(
        image_id, image_tags.get("fleet_stage", ""), tuple(restores), tuple(moved), tuple(descendants)
    )


def check_previous_images(plan: RevocationPlan, images: Mapping[str, Mapping[str, Any] | None]) -> None:
    """Each image a pointer goes back to must still be available and not revoked itself."""
    problems = []
    for restore in plan.restores:
        image = images.get(restore.previous_image)
        tags = platform.tags_of(image)
        if image is None or image.get("State") != "available":
            state = "gone" if image is None else image.get("State")
            problems.append(f"{restore.pointer} would go back to {restore.previous_image}, which is {state}")
        elif tags.get(REVOKED_TAG):
            problems.append(
                f"{restore.pointer} would go back to {restore.previous_image}, which is revoked too "
                f"({tags.get(REVOKED_REASON_TAG, 'no reason')})"
            )
    if problems:
        raise RevocationRefused(
            "; ".join(problems) + ". Build a new image for these fleets first (gpu_ami_build_and_bake), then revoke"
        )


def revoked_tags(reason: str, run_id: str, inherited_from: str | None = None) -> dict[str, str]:
    """The tags of a revoked image; one revoked with the image it was baked from says so."""
    why = f"{reason} (baked from revoked {inherited_from})" if inherited_from else reason
    return {REVOKED_TAG: "true", REVOKED_REASON_TAG: why, REVOKED_BY_TAG: run_id}


def revocation_of(tags: Mapping[str, str]) -> str | None:
    """Why an image was revoked (its tags), or None when it is not."""
    if not tags.get(REVOKED_TAG):
        return None
    return f"revoked by {tags.get(REVOKED_BY_TAG, '?')}: {tags.get(REVOKED_REASON_TAG, 'no reason given')}"
