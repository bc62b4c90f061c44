"""Who may approve a fleet change, and what an answer does to the run."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from bp_tasks.approvals import ChangeRejected, FleetChangeApproval

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def _approval(stage: str) -> FleetChangeApproval:
    return FleetChangeApproval(
        task_id="approve_apply", stage=stage, change="the fleet's stacks were not deployed", subject="Apply?"
    )


def _answer(option: str, by: str) -> dict:
    return {"chosen_options": [option], "params_input": {}, "responded_by_user": {"id": by}, "responded_at": AT}


def _context(triggered_by: str) -> dict:
    return {"dag_run": SimpleNamespace(triggering_user_name=triggered_by)}


def test_a_rejection_fails_the_run_saying_who_when_and_what_was_not_done():
    with pytest.raises(ChangeRejected) as rejected:
        _approval("production").execute_complete(_context("ci"), _answer("Reject", "alice"))

    assert str(rejected.value) == (
        "Rejected by alice at 2026-11-30T09:00:00+00:00: the fleet's stacks were not deployed. Nothing was changed."
    )


def test_in_production_the_triggerer_may_not_approve_their_own_change():
    with pytest.raises(ChangeRejected, match="Approved by ci, who also triggered this run: in production a second"):
        _approval("production").execute_complete(_context("ci"), _answer("Approve", "ci"))


def test_a_second_person_approves_and_staging_needs_no_second_person():
    assert _approval("production").execute_complete(_context("ci"), _answer("Approve", "alice")) is not None
    assert _approval("staging").execute_complete(_context("ci"), _answer("Approve", "ci")) is not None


def test_the_configured_approvers_are_assigned_so_airflow_refuses_anyone_else(monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__APPROVERS", '{"production": ["alice", "bob"]}')
    approval = _approval("production")
    seen = {}
    monkeypatch.setattr(
        FleetChangeApproval.__mro__[1], "execute", lambda self, context: seen.setdefault("users", self.assigned_users)
    )

    approval.execute({})

    assert seen["users"] == [{"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]
