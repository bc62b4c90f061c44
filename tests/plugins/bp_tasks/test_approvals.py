"""The approval task: whom it assigns, what an answer does to the run. (What a change task
does with the recorded answer runs against the real services: tests/e2e.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.approvals import ApprovalGate, ChangeNotApproved, ChangeRejected, FleetChangeApproval, approval_or
from include.amis.build import BuildRequest
from include.rollouts.rollout import RolloutRequest

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
APPROVERS = {"production": [{"id": "3", "name": "alice"}, {"id": "4", "name": "bob"}]}


@pytest.fixture(autouse=True)
def _approvers(monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__APPROVERS", json.dumps(APPROVERS))


def _approval(stage: str, **kwargs) -> FleetChangeApproval:
    return FleetChangeApproval(
        task_id="approve_apply", stage=stage, change="the fleet's stacks were not deployed", subject="Apply?", **kwargs
    )


def _answer(option: str, by: str, user_id: str) -> dict:
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_by_user": {"id": user_id, "name": by},
        "responded_at": AT,
    }


def _context(triggered_by: str | None, try_number: int = 1, xcoms: dict | None = None) -> dict:
    ti = SimpleNamespace(try_number=try_number, xcom_pull=lambda task_ids: (xcoms or {}).get(task_ids))
    return {"dag_run": SimpleNamespace(triggering_user_name=triggered_by), "ti": ti, "params": {}}


def _assigned(monkeypatch, approval: FleetChangeApproval, context: dict) -> list[dict] | None:
    """Who ``execute`` assigns before it pauses (Airflow's own part of execute stubbed)."""
    seen: dict[str, list[dict] | None] = {}
    monkeypatch.setattr(
        FleetChangeApproval.__mro__[1], "execute", lambda self, context: seen.setdefault("users", self.assigned_users)
    )
    approval.execute(context)
    return seen.get("users")


def test_a_rejection_fails_the_run_saying_who_when_and_what_was_not_done():
    with pytest.raises(ChangeRejected) as rejected:
        _approval("production").execute_complete(_context("ci"), _answer("Reject", "alice", "3"))

    assert str(rejected.value) == (
        "Rejected by alice (id 3) at 2026-11-30T09:00:00+00:00: the fleet's stacks were not deployed. "
        "Nothing was changed."
    )


def test_no_answer_in_time_fails_for_good_and_is_never_retried():
    approval = _approval("production", response_timeout=None)

    with pytest.raises(ChangeRejected, match="Nobody answered within None: the fleet's stacks were not deployed"):
        approval.execute_complete(_context("ci"), {"error": "timeout", "error_type": "timeout"})
    assert approval.retries == 2  # retries exist for Airflow's race only: a timeout is not retried
    assert issubclass(ChangeRejected, AirflowFailException)


def test_in_production_the_triggerer_may_not_approve_their_own_change():
    with pytest.raises(ChangeRejected, match="alice \\(id 3\\) approved approve_apply and also triggered this run"):
        _approval("production").execute_complete(_context("alice"), _answer("Approve", "alice", "3"))


def test_a_listed_second_person_approves_and_staging_needs_no_list():
    assert _approval("production").execute_complete(_context("ci"), _answer("Approve", "bob", "4")) is not None
    assert _approval("staging").execute_complete(_context("ci"), _answer("Approve", "ci", "ci")) is not None


def test_the_approvers_minus_the_triggering_user_are_assigned_so_airflow_refuses_anyone_else(monkeypatch):
    assert _assigned(monkeypatch, _approval("production"), _context("ci")) == APPROVERS["production"]
    assert _assigned(monkeypatch, _approval("production"), _context("alice")) == [{"id": "4", "name": "bob"}]


def test_with_no_one_left_to_answer_the_approval_fails_before_it_asks(monkeypatch):
    monkeypatch.setenv("AIRFLOW__BP__APPROVERS", '{"production": ["alice"]}')

    with pytest.raises(ChangeRejected, match="Nobody may approve this: the production approvers are alice"):
        _assigned(monkeypatch, _approval("production"), _context("alice"))


def test_a_second_approval_asks_another_approver_only_when_nobody_triggered_the_run(monkeypatch):
    second = _approval("production", second_to="approve_remediation")
    first = {"approve_remediation": _answer("Approve", "alice", "3")}

    assert _assigned(monkeypatch, second, _context(None, xcoms=first)) == [{"id": "4", "name": "bob"}]
    assert _assigned(monkeypatch, second, _context("ci", xcoms=first)) is None  # a person triggered: asks nothing


def test_a_run_the_pipeline_started_itself_is_a_run_nobody_triggered(monkeypatch):
    """gpu_fleet_guardrails starts gpu_fleet_remediation as the airflow_api connection's
    service user: that run needs two approvers in production, as a scheduled one does."""
    service = {"conn_type": "http", "host": "http://127.0.0.1:8080", "login": "airflow-api", "password": "x"}
    monkeypatch.setenv("AIRFLOW_CONN_AIRFLOW_API", json.dumps(service))
    second = _approval("production", second_to="approve_remediation")
    first = {"approve_remediation": _answer("Approve", "alice", "3")}

    assert _assigned(monkeypatch, _approval("production"), _context("airflow-api")) == APPROVERS["production"]
    assert _assigned(monkeypatch, second, _context("airflow-api", xcoms=first)) == [{"id": "4", "name": "bob"}]
    assert _assigned(monkeypatch, second, _context("ci", xcoms=first)) is None  # a person triggered: asks nothing


def test_a_gate_refuses_in_one_line_when_the_answer_can_not_be_read(monkeypatch):
    """No airflow_api connection: the change can't check its approval, so it changes nothing."""
    monkeypatch.delenv("AIRFLOW_CONN_AIRFLOW_API", raising=False)
    context = {
        "params": {"fleet_stage": "production"},
        "ti": SimpleNamespace(task_id="deploy_fleet_stack", dag_id="d", run_id="r"),
        "dag_run": SimpleNamespace(triggering_user_name="ci"),
    }

    with pytest.raises(ChangeNotApproved) as refused:
        ApprovalGate("approve_apply")(context)

    assert str(refused.value).startswith("deploy_fleet_stack can't check its approval: the airflow_api connection")
    assert str(refused.value).endswith("Nothing was changed.")
    assert ApprovalGate("approve_apply")({**context, "params": {"fleet_stage": "staging"}}) is None


@pytest.mark.parametrize(
    ("build", "params"),
    [
        (BuildRequest.from_params, {"mode": "bake", "instance_type": "g5.xlarge", "start_instance_refresh": False}),
        (RolloutRequest.from_params, {"bundle_id": "b-1", "strategy": "refresh"}),
    ],
)
def test_only_a_production_request_goes_to_its_approval(build, params):
    """A request's branch (``approval_path``, ``promotion_path``): production's changes
    wait for a second person, staging's go straight to the lock."""
    staging = build({"fleet_stage": "staging", "fleet_slug": "gpu-default", **params})
    production = build({"fleet_stage": "production", "fleet_slug": "gpu-default", **params})

    assert approval_or(staging.fleet, "approve") == "acquire_lock"
    assert approval_or(production.fleet, "approve") == "approve"
