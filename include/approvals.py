"""Who may approve a change, and whether a recorded answer approves it.

A production change needs two people: the one who triggered it and a listed approver
who is not that person. A run nobody triggered (a schedule) needs two listed approvers
instead. The answer is Airflow's human-in-the-loop record of the approval task (who
answered, with which option), never the approval task's state: a state can be set by
hand, a record can only be written by the person who answered.

Users are compared by id *and* by name: auth managers disagree on what an id is (the
simple auth manager's id is the user name, FAB's a number, Keycloak's a ``sub``), so a
person matches an approver only when both agree, and is the triggering user when either
does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from include.naming.platform import STAGES

#: Stages whose changes need a second person (staging approvals need any one answer).
APPROVAL_STAGES = ("production",)
APPROVE, REJECT = "Approve", "Reject"


def needs_approval(stage: str) -> bool:
    """Production changes are approved by a second person; staging ones run unattended."""
    return stage in APPROVAL_STAGES


class InvalidApprovers(ValueError):
    """``[bp] approvers`` can't be read: the message says where and what it should be."""


@dataclass(frozen=True)
class Person:
    """A user as the auth manager names them (``HITLUser``: an id and a name)."""

    id: str
    name: str

    @classmethod
    def from_api(cls, user: Mapping[str, Any] | None) -> Person | None:
        if not user:
            return None
        return cls(str(user.get("id", "")), str(user.get("name", "")))

    def is_listed_as(self, approver: Person) -> bool:
        return self.id == approver.id and self.name == approver.name

    def is_user(self, user: str | None) -> bool:
        """Whether ``user`` (a triggering user's name, or an id) names this person."""
        return bool(user) and user in (self.id, self.name)

    def is_same_as(self, other: Person) -> bool:
        """Whether ``other`` (e.g. the first approver) is this person, by id and name or by name."""
        return self.is_listed_as(other) or self.is_user(other.name)

    def as_hitl_user(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name}

    def __str__(self) -> str:
        return self.name if self.id == self.name else f"{self.name} (id {self.id})"


def parse_approvers(text: str) -> dict[str, tuple[Person, ...]]:
    """``[bp] approvers``: a JSON object, stage -> its approvers. An approver is a user
    name (where the auth manager's id is the name) or ``{"id": ..., "name": ...}`` (FAB:
    the number ``airflow users list`` shows)."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidApprovers(f"[bp] approvers is not JSON ({error.msg} at character {error.pos})") from None
    if not isinstance(data, dict):
        raise InvalidApprovers("[bp] approvers must be a JSON object: stage -> list of approvers")
    found: dict[str, tuple[Person, ...]] = {}
    for stage, entries in data.items():
        if stage not in STAGES:
            raise InvalidApprovers(f"[bp] approvers names stage {stage!r}; the stages are {', '.join(STAGES)}")
        if not isinstance(entries, list):
            raise InvalidApprovers(f"[bp] approvers[{stage!r}] must be a list")
        found[stage] = tuple(_person(stage, entry) for entry in entries)
    return found


def _person(stage: str, entry: Any) -> Person:
    if isinstance(entry, str) and entry.strip():
        return Person(entry, entry)
    if (
        isinstance(entry, dict)
        and set(entry) == {"id", "name"}
        and all(isinstance(entry[key], str | int) and str(entry[key]).strip() for key in ("id", "name"))
    ):
        return Person(str(entry["id"]), str(entry["name"]))
    raise InvalidApprovers(
        f'[bp] approvers[{stage!r}] holds {entry!r}: an approver is a user name or {{"id": ..., "name": ...}}'
    )


def who_may_answer(
    approvers: Iterable[Person], triggered_by: str | None, excluded: Iterable[Person] = ()
) -> tuple[Person, ...]:
    """The listed approvers minus the run's triggering user and ``excluded`` (the first
    approver, when a run nobody triggered asks a second one)."""
    excluded = tuple(excluded)
    return tuple(
        a for a in approvers if not a.is_user(triggered_by) and not any(a.is_same_as(other) for other in excluded)
    )


def names(people: Iterable[Person]) -> str:
    return ", ".join(str(person) for person in people) or "nobody"


@dataclass(frozen=True)
class Answer:
    """What a person answered on an approval task (Airflow's HITL record)."""

    chosen: tuple[str, ...]
    by: Person | None
    at: str

    @classmethod
    def from_hitl(cls, record: Mapping[str, Any] | None) -> Answer | None:
        """The answer in a ``hitlDetails`` record of the REST API (or a resume event);
        None when nobody answered."""
        if not record or not record.get("chosen_options"):
            return None
        user = record.get("responded_by_user") or record.get("responded_by")
        at = record.get("responded_at")
        return cls(
            tuple(record["chosen_options"]),
            Person.from_api(user),
            at.isoformat(timespec="seconds") if hasattr(at, "isoformat") else str(at or "?"),
        )

    @property
    def approves(self) -> bool:
        return self.chosen == (APPROVE,)


def answer_problem(
    answer: Answer | None,
    *,
    task_id: str,
    stage: str,
    approvers: Iterable[Person],
    triggered_by: str | None,
    excluded: Iterable[Person] = (),
) -> str | None:
    """Why ``answer`` on ``task_id`` does not approve a change in ``stage``, or None.

    Any Approve approves a staging change that asked for one; in production it must come
    from a listed approver who did not trigger the run (nor, for a second approval,
    gave the first)."""
    if answer is None:
        return (
            f"nobody answered {task_id} (an approval marked success or skipped by hand, or never asked, "
            "approves nothing)"
        )
    if not answer.approves:
        return f"{task_id} was answered {'/'.join(answer.chosen)} by {answer.by or 'nobody'} at {answer.at}"
    if not needs_approval(stage):
        return None
    approvers = tuple(approvers)
    if not approvers:
        return f"no {stage} approvers are configured ([bp] approvers), so nobody can approve a {stage} change"
    if answer.by is None:
        return f"the Approve on {task_id} names no person (a default is not an approval)"
    if not any(answer.by.is_listed_as(approver) for approver in approvers):
        return f"{answer.by} approved {task_id} but is not a {stage} approver (those are {names(approvers)})"
    if answer.by.is_user(triggered_by):
        return f"{answer.by} approved {task_id} and also triggered this run: a second person must approve"
    if any(answer.by.is_same_as(other) for other in excluded):
        return f"{answer.by} gave the first approval too: a run nobody triggered needs two different approvers"
    return None
