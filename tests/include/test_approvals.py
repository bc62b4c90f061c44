"""Who may approve, and whether a recorded answer approves a change (include.approvals)."""

from __future__ import annotations

import pytest

from include.approvals import (
    Answer,
    InvalidApprovers,
    Person,
    answer_problem,
    parse_approvers,
    who_may_answer,
)

ALICE, BOB = Person("3", "alice"), Person("4", "bob")
PRODUCTION = {"stage": "production", "approvers": (ALICE, BOB)}


def _answer(choice: str = "Approve", by: Person | None = BOB) -> Answer:
    record = {
        "chosen_options": [choice],
        "responded_by_user": by.as_hitl_user() if by else None,
        "responded_at": "2026-12-06T10:00:00Z",
    }
    return Answer.from_hitl(record)


def test_approvers_are_names_or_fab_ids_with_names():
    parsed = parse_approvers('{"production": ["carol", {"id": 3, "name": "alice"}], "staging": []}')

    assert parsed == {"production": (Person("carol", "carol"), ALICE), "staging": ()}
    assert parse_approvers("  ") == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{production: [alice]}", "[bp] approvers is not JSON"),
        ('["alice"]', "must be a JSON object"),
        ('{"prod": ["alice"]}', "names stage 'prod'; the stages are staging, production"),
        ('{"production": "alice"}', "[bp] approvers['production'] must be a list"),
        ('{"production": [{"id": "3"}]}', "an approver is a user name or"),
        ('{"production": [""]}', "an approver is a user name or"),
    ],
)
def test_a_bad_approvers_setting_is_one_line_saying_what_it_should_be(text, message):
    with pytest.raises(InvalidApprovers, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_approvers(text)


def test_the_triggering_user_and_the_first_approver_may_not_answer():
    assert who_may_answer((ALICE, BOB), "alice") == (BOB,)
    assert who_may_answer((ALICE, BOB), "3") == (BOB,)  # an id names the user too
    assert who_may_answer((ALICE, BOB), None, excluded=(ALICE,)) == (BOB,)
    assert who_may_answer((ALICE, BOB), None) == (ALICE, BOB)


def test_a_listed_second_person_approves_production():
    assert answer_problem(_answer(), task_id="approve_apply", triggered_by="alice", **PRODUCTION) is None


@pytest.mark.parametrize(
    ("answer", "triggered_by", "approvers", "problem"),
    [
        (None, "ci", (ALICE, BOB), "nobody answered approve_apply (an approval marked success or skipped by hand"),
        (_answer("Reject"), "ci", (ALICE, BOB), "approve_apply was answered Reject by bob (id 4) at 2026-12-06T10"),
        (_answer(by=None), "ci", (ALICE, BOB), "the Approve on approve_apply names no person"),
        (_answer(by=Person("9", "mallory")), "ci", (ALICE, BOB), "mallory (id 9) approved approve_apply but is not"),
        (_answer(by=BOB), "bob", (ALICE, BOB), "bob (id 4) approved approve_apply and also triggered this run"),
        (_answer(by=BOB), "4", (ALICE, BOB), "bob (id 4) approved approve_apply and also triggered this run"),
        (_answer(), "ci", (), "no production approvers are configured ([bp] approvers), so nobody can approve"),
        # FAB's ids are numbers: a name in the id's place (the old comparison) is not the approver
        (_answer(by=Person("bob", "bob")), "ci", (ALICE, BOB), "bob approved approve_apply but is not a production"),
    ],
)
def test_anything_else_approves_nothing_and_says_why(answer, triggered_by, approvers, problem):
    found = answer_problem(
        answer, task_id="approve_apply", stage="production", approvers=approvers, triggered_by=triggered_by
    )

    assert found is not None
    assert found.startswith(problem), found


def test_a_second_approval_must_come_from_another_approver():
    first = _answer(by=ALICE)
    same = answer_problem(first, task_id="confirm", triggered_by=None, excluded=(ALICE,), **PRODUCTION)

    assert same.startswith("alice (id 3) gave the first approval too")
    assert (
        answer_problem(_answer(by=BOB), task_id="confirm", triggered_by=None, excluded=(ALICE,), **PRODUCTION) is None
    )


def test_staging_needs_an_approve_from_anyone_but_an_approve_all_the_same():
    staging = {"task_id": "approve_terminate", "stage": "staging", "approvers": (), "triggered_by": "dev"}

    assert answer_problem(_answer(by=Person("dev", "dev")), **staging) is None
    assert answer_problem(None, **staging).startswith("nobody answered approve_terminate")
    assert answer_problem(_answer("Reject"), **staging).startswith("approve_terminate was answered Reject")


def test_an_answer_is_read_from_the_rest_apis_record_and_from_a_resume_event():
    from datetime import UTC, datetime

    event = {
        "chosen_options": ["Approve"],
        "responded_by_user": {"id": "4", "name": "bob"},
        "responded_at": datetime(2026, 12, 6, 10, tzinfo=UTC),
    }
    assert Answer.from_hitl(event) == Answer(("Approve",), BOB, "2026-12-06T10:00:00+00:00")
    assert Answer.from_hitl({"chosen_options": None, "responded_by_user": None}) is None
    assert Answer.from_hitl(None) is None
