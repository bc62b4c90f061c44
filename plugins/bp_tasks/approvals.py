"""The Approve/Reject a person gives in the Airflow UI before a production change.

Who may answer is configuration, not a param: ``[bp] approvers`` (JSON, stage -> user
ids, e.g. ``{"production": ["ops-lead", "sre-oncall"]}``; ``AIRFLOW__BP__APPROVERS``) -
set by whoever deploys Airflow, out of reach of the credential that triggers runs. With
a list, Airflow itself refuses (HTTP 403) an answer from anyone else. In production the
person who triggered the run may not approve it: a second person signs off.

A Reject ends the run failed with one paragraph - who rejected it, when, and what was
not done - instead of skipping the rest and calling the run a success.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.common.compat.sdk import conf
from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk.exceptions import AirflowFailException

from include import approvals


class ChangeRejected(AirflowFailException):
    """A person rejected the change (or the approval broke the two-person rule)."""


def configured_approvers() -> dict[str, list[str]]:
    """``[bp] approvers``: stage -> the user ids that may answer its approvals."""
    text = conf.get("bp", "approvers", fallback="").strip()
    return json.loads(text) if text else {}


class FleetChangeApproval(ApprovalOperator):
    """An approval of a change to a fleet (``body`` says what).

    :param stage: the fleet's stage; its approvers are assigned to the task. (templated)
    :param change: what is not done when rejected, e.g. "the AMI was not promoted".
    :param rejected_outcome: what follows a Reject. (default: "Nothing was changed.")
    """

    template_fields = (*ApprovalOperator.template_fields, "stage")

    def __init__(
        self, *, stage: str, change: str, rejected_outcome: str = "Nothing was changed.", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.stage = stage
        self.change = change
        self.rejected_outcome = rejected_outcome

    def execute(self, context: Any) -> Any:
        approvers = configured_approvers().get(self.stage, [])
        if approvers:  # written with the request: Airflow answers 403 to anyone else
            self.assigned_users = [{"id": user, "name": user} for user in approvers]
            self.log.info("Approvers of %s changes: %s", self.stage, ", ".join(approvers))
        return super().execute(context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> Any:
        if "error" in event:  # a response timeout: the run fails as the provider says
            return super().execute_complete(context, event)
        who = (event.get("responded_by_user") or {}).get("id", "someone")
        when = event["responded_at"].isoformat(timespec="seconds") if event.get("responded_at") else "?"
        triggered_by = context["dag_run"].triggering_user_name
        if event["chosen_options"] == [self.REJECT]:
            raise ChangeRejected(f"Rejected by {who} at {when}: {self.change}. {self.rejected_outcome}")
        if approvals.needs_approval(self.stage) and triggered_by and who == triggered_by:
            raise ChangeRejected(
                f"Approved by {who}, who also triggered this run: in {self.stage} a second person must approve. "
                f"{self.change[0].upper()}{self.change[1:]}; trigger it again and have another approver answer."
            )
        self.log.info("Approved by %s at %s (the run was triggered by %s)", who, when, triggered_by)
        return super().execute_complete(context, event)
