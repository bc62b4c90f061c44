"""The Approve/Reject a person gives in the Airflow UI before a change, and the gate
every change task passes first.

Who may answer is configuration, not a param: ``[bp] approvers`` (JSON, stage -> users,
``AIRFLOW__BP__APPROVERS``; :func:`include.approvals.parse_approvers`), set by whoever
deploys Airflow, out of reach of the credential that triggers runs. A production
approval is assigned to those users minus the one who triggered the run, so Airflow
itself refuses (HTTP 403) an answer from anyone else; a run nobody triggered (a
schedule) asks a second listed approver after the first (``second_to``).

**The change checks its own approval.** An approval task's state proves nothing: anyone
allowed to edit task instances can mark it success or skipped. So each task that changes
what a stage runs carries :class:`ApprovalGate` as its ``pre_execute``: it reads the
answer from Airflow's human-in-the-loop record of the approval (through the REST API,
:func:`bp_tasks.common.airflow_api`), which only the answering person's request writes,
and refuses in one line - changing nothing - unless a listed approver other than the
triggering user chose Approve (:func:`include.approvals.answer_problem`).

**An answer at any moment survives.** Airflow 3.3.2 fails a resumed approval when the
answer arrives before the scheduler has handled the pause's executor event
(apache/airflow #72716, open; seen 0.1-0.8 s after the pause): the approval retries,
and the retry finds the answer the interrupted try got (:func:`approval_record`) instead
of asking again. A try a person ended on purpose (cleared after it succeeded or failed)
is asked again.

A Reject, or no answer in time, fails the run with one paragraph - who, when, and what
was not done - instead of skipping the rest and calling the run a success.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import airflow_api, service_user
from include import approvals
from include.approvals import Answer, Person
from include.naming.fleet import Fleet

log = logging.getLogger("bp.approvals")

#: Retries of an approval: each one only re-reads the answer already given (#72716).
RACE_RETRIES = 2
RACE_RETRY_DELAY = timedelta(seconds=5)


class ChangeRejected(AirflowFailException):
    """A person rejected the change, nobody answered in time, or nobody may answer."""


class ChangeNotApproved(AirflowFailException):
    """A change task found no valid approval: it changed nothing."""


def configured_approvers(stage: str) -> tuple[Person, ...]:
    """``[bp] approvers`` of ``stage`` (none: nobody can approve its changes); none either
    where a stage's approvals need no second person (any answer approves there)."""
    if not approvals.needs_approval(stage):
        return ()
    try:
        return approvals.parse_approvers(conf.get("bp", "approvers", fallback="")).get(stage, ())
    except approvals.InvalidApprovers as error:
        raise ChangeNotApproved(f"{error}: nobody can approve a {stage} change until it is fixed") from None


#: A try in one of these states ended as the task meant: its answer is not carried on.
ENDED_STATES = ("success", "failed", "skipped", "upstream_failed", "removed")


def approval_record(client: Any, dag_id: str, run_id: str, task_id: str) -> dict[str, Any] | None:
    """The answered human-in-the-loop record of an approval task, or None: its current
    try's, or the previous try's when Airflow interrupted that one after the answer (a
    retry keeps the task instance's record when it was queued, and archives it with the
    try when it was running)."""
    current = client.hitl_detail(dag_id, run_id, task_id)
    if current and current.get("response_received"):
        return current
    try_number = client.task_instance(dag_id, run_id, task_id).get("try_number") or 0
    if try_number <= 1:
        return None
    earlier = client.hitl_detail(dag_id, run_id, task_id, try_number - 1)
    interrupted = earlier and (earlier.get("task_instance") or {}).get("state") not in ENDED_STATES
    return earlier if interrupted and earlier.get("response_received") else None


def recorded_answer(context: Mapping[str, Any], task_id: str) -> Answer | None:
    """The answer Airflow recorded on ``task_id`` of this run, or None."""
    ti = context["ti"]
    return Answer.from_hitl(approval_record(airflow_api(), ti.dag_id, ti.run_id, task_id))


def approval_or(fleet: Fleet, approval: str, then: str = "acquire_lock") -> str:
    """Where a run's branch goes: to ``approval`` when a change to ``fleet`` needs one (a
    production change), else straight to ``then`` (the lock before the change)."""
    if approvals.needs_approval(fleet.stage):
        log.info("A %s change: waiting for %s in the Airflow UI", fleet.stage, approval)
        return approval
    return then


def production_only(context: Mapping[str, Any]) -> str | None:
    """A gate's ``stage_of`` where only production asks: the run's ``fleet_stage`` param
    (fixed when the run was created) when it is a production one."""
    stage = context["params"]["fleet_stage"]
    return stage if approvals.needs_approval(stage) else None


def every_stage(context: Mapping[str, Any]) -> str | None:
    """A gate's ``stage_of`` where every stage asks (a destroy): the run's ``fleet_stage``."""
    return context["params"]["fleet_stage"]


class ApprovalGate:
    """A change task's ``pre_execute``: the run's approval, read from Airflow's record.

    :param approval: the approval task's id.
    :param stage_of: the stage whose rules apply, or a function of the context giving it,
        or None when this run asked no approval (default: ``fleet_stage`` when it is a
        production one).
    :param second: the second approval a run nobody triggered needs in production.
    """

    def __init__(
        self,
        approval: str,
        *,
        stage_of: str | Callable[[Mapping[str, Any]], str | None] = production_only,
        second: str | None = None,
    ) -> None:
        self.approval = approval
        self.stage_of = stage_of
        self.second = second

    def __call__(self, context: Mapping[str, Any]) -> None:
        stage = self.stage_of if isinstance(self.stage_of, str) else self.stage_of(context)
        if stage is None:
            return
        task_id = context["ti"].task_id
        try:
            problem, by = self._problem(context, stage)
        except AirflowFailException as error:  # no airflow_api, unreadable approvers
            raise ChangeNotApproved(f"{task_id} can't check its approval: {error}. Nothing was changed.") from None
        if problem:
            raise ChangeNotApproved(f"{task_id} refused: {problem}. Nothing was changed.")
        log.info("Approved by %s (%s); the run was triggered by %s", approvals.names(by), self.approval, _who(context))

    def _problem(self, context: Mapping[str, Any], stage: str) -> tuple[str | None, list[Person]]:
        triggered_by = triggering_person(context)
        listed = configured_approvers(stage)
        first = recorded_answer(context, self.approval)
        rule = {"stage": stage, "approvers": listed, "triggered_by": triggered_by}
        problem = approvals.answer_problem(first, task_id=self.approval, **rule)
        by = [first.by] if first and first.by else []
        if problem is None and self.second and approvals.needs_approval(stage) and not triggered_by:
            second = recorded_answer(context, self.second)
            problem = approvals.answer_problem(second, task_id=self.second, excluded=by, **rule)
            by += [second.by] if second and second.by else []
        return problem, by


def triggering_person(context: Mapping[str, Any]) -> str | None:
    """Who triggered the run, when a person did. A schedule, and the pipeline itself (the
    ``airflow_api`` connection's service user, with which ``gpu_fleet_guardrails`` starts
    ``gpu_fleet_remediation``), are nobody: a production run of theirs needs a second
    approver after the first, as a scheduled run does."""
    user = context["dag_run"].triggering_user_name
    return None if user is None or user == service_user() else user


def _who(context: Mapping[str, Any]) -> str:
    user = context["dag_run"].triggering_user_name
    return triggering_person(context) or ("nobody (a schedule)" if user is None else f"nobody ({user}, the pipeline)")


class FleetChangeApproval(ApprovalOperator):
    """An approval of a change (``body`` says what); the change tasks gate on its answer.

    :param stage: the stage of what changes; production ones go to its approvers. (templated)
    :param change: what is not done when rejected, e.g. "the AMI was not promoted".
    :param rejected_outcome: what follows a Reject. (default: "Nothing was changed.")
    :param second_to: the first approval, when this one is the second that a production
        run nobody triggered needs (it asks nothing and succeeds when a person triggered the
        run: the first approval was then the second person's).
    """

    template_fields = (*ApprovalOperator.template_fields, "stage")

    def __init__(
        self,
        *,
        stage: str,
        change: str,
        rejected_outcome: str = "Nothing was changed.",
        second_to: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("retries", RACE_RETRIES)
        kwargs.setdefault("retry_delay", RACE_RETRY_DELAY)
        super().__init__(**kwargs)
        self.stage = stage
        self.change = change
        self.rejected_outcome = rejected_outcome
        self.second_to = second_to

    def execute(self, context: Any) -> Any:
        triggered_by = triggering_person(context)
        excluded: tuple[Person, ...] = ()
        if self.second_to is not None:
            if not approvals.needs_approval(self.stage) or triggered_by:
                self.log.info("%s triggered this run: %s by another person approves it", triggered_by, self.second_to)
                return None
            first = Answer.from_hitl(context["ti"].xcom_pull(task_ids=self.second_to))
            excluded = (first.by,) if first and first.by else ()
        if approvals.needs_approval(self.stage):
            listed = configured_approvers(self.stage)
            allowed = approvals.who_may_answer(listed, triggered_by, excluded)
            if not allowed:
                who_not = f"the person who triggered the run ({_who(context)})" + (
                    f" and the first approver ({approvals.names(excluded)})" if excluded else ""
                )
                raise ChangeRejected(
                    f"Nobody may approve this: the {self.stage} approvers are {approvals.names(listed)} "
                    f"([bp] approvers), less {who_not}. {self._not_done(sentence=True)}"
                )
            self.assigned_users = [person.as_hitl_user() for person in allowed]
            self.log.info("Who may answer (%s approvers): %s", self.stage, approvals.names(allowed))
        earlier = self._earlier_answer(context)
        if earlier is not None:
            return self.execute_complete(context, earlier)
        return super().execute(context)

    def _earlier_answer(self, context: Any) -> dict[str, Any] | None:
        """On a retry: the answer the interrupted try got (#72716), as a resume event."""
        ti = context["ti"]
        if ti.try_number <= 1:
            return None
        record = approval_record(airflow_api(), ti.dag_id, ti.run_id, ti.task_id)
        if record is None:
            return None
        self.log.info(
            "Try %s: %s answered %s at %s on an earlier try; it stands (Airflow failed that try after the answer)",
            ti.try_number,
            Person.from_api(record["responded_by_user"]),
            "/".join(record["chosen_options"]),
            record["responded_at"],
        )
        return {
            "chosen_options": record["chosen_options"],
            "params_input": record.get("params_input") or {},
            "responded_by_user": record["responded_by_user"],
            "responded_at": datetime.fromisoformat(record["responded_at"].replace("Z", "+00:00")),
        }

    def _not_done(self, sentence: bool = False) -> str:
        """What was not done, and what follows (``sentence``: as a sentence of its own)."""
        change = f"{self.change[0].upper()}{self.change[1:]}" if sentence else self.change
        return f"{change}. {self.rejected_outcome}"

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:  # no answer within response_timeout: final, never retried
            raise ChangeRejected(f"Nobody answered within {self.response_timeout}: {self._not_done()}")
        answer = Answer.from_hitl(event)
        if answer is not None and not answer.approves:
            raise ChangeRejected(f"Rejected by {answer.by or 'someone'} at {answer.at}: {self._not_done()}")
        problem = approvals.answer_problem(
            answer,
            task_id=self.task_id,
            stage=self.stage,
            approvers=configured_approvers(self.stage),
            triggered_by=triggering_person(context),
        )
        if problem:
            raise ChangeRejected(f"Not approved: {problem}. {self._not_done(sentence=True)}")
        self.log.info("Approved by %s at %s (the run was triggered by %s)", answer.by, answer.at, _who(context))
        return super().execute_complete(context, event)
