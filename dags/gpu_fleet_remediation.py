"""
### GPU fleet remediation: one production fleet's safe fixes, after its approvals

Started by `gpu_fleet_guardrails` for each production fleet with a safe fix, one run per
fleet (run id `remediate__production__<slug>__<time>`) and never a second while one waits:
the 15-minute inspection and staging's fixes never wait on a production approval, and one
fleet's pending approval never holds another fleet's. An engineer may trigger it for one
fleet too.

1. **validate_request** (no AWS call) → **inspect_fleet**: the fleet now, and its fixes
   (none: the run ends here, asking nobody);
2. **approve_remediation** (a listed approver) → **confirm_remediation** (a second one when
   nobody triggered the run: the guardrails' service user is nobody, as a schedule is);
3. **remediate** (only with the recorded approvals): inspects the fleet again and applies
   only the fixes still called for (a leak that ended while the approval waited is left
   alone), each with an immutable record under `audit/remediations/`.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from bp_tasks import gpu_fleet_remediation as tasks
from bp_tasks import params as form
from bp_tasks.approvals import ApprovalGate, FleetChangeApproval
from include.form_params import form_pattern


@dag(
    schedule=None,
    start_date=form.PLATFORM_START,
    catchup=False,
    max_active_runs=16,  # one per production fleet: the guardrails never start a second for a fleet
    is_paused_upon_creation=False,  # it runs only when the guardrails (or a person) start it
    dagrun_timeout=timedelta(hours=9),  # two approvals of up to 4 hours each
    doc_md=__doc__,
    tags=["platform", "fleet", "guardrails", "cost"],
    default_args={"owner": "platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        "fleet_stage": Param(
            "production", type="string", enum=["production"], title="Fleet stage", description="Production only."
        ),
        "fleet_slug": form.fleet_slug_param("The production fleet to fix."),
        "inspection_run_id": Param(
            None,
            type=["null", "string"],
            pattern=form_pattern(r"[A-Za-z0-9_.~:+-]{1,250}"),
            title="Inspection run",
            description="The gpu_fleet_guardrails run that asked (set by it; empty when a person triggers).",
        ),
        "aws_conn_id": form.aws_conn_id_param(),
    },
)
def gpu_fleet_remediation():
    request = tasks.validate_request()
    question = tasks.remediation_question(tasks.inspect_fleet(request))
    approval = {"stage": "production", "change": "nothing was remediated in production", "body": question}
    approve = FleetChangeApproval(
        task_id="approve_remediation",
        subject="Apply the guardrails' fixes to a production GPU fleet?",
        response_timeout=timedelta(hours=4),
        **approval,
    )
    confirm = FleetChangeApproval(  # nobody triggered a run the guardrails started: a second approver confirms
        task_id="confirm_remediation",
        subject="Second approval: apply the guardrails' fixes to a production GPU fleet?",
        response_timeout=timedelta(hours=4),
        second_to=approve.task_id,
        **approval,
    )
    gate = ApprovalGate(approve.task_id, stage_of="production", second=confirm.task_id)
    approve >> confirm >> tasks.remediate.override(pre_execute=gate)(request)


gpu_fleet_remediation()
