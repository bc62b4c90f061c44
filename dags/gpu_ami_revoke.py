"""
### GPU AMI revoke: take a bad image out of every fleet, and out of every future promotion

For an image found bad after its promotion (a driver that crashes under load, a CVE):

1. **validate_request** (no AWS call): `image_id`, and a one-line `reason`;
2. **plan_revocation**: the image must exist and be ours (provenance tags). The images
   baked from it (their `base_ami`, to any depth) are revoked with it, as HCP Packer's
   revocation is inherited; the plan lists that tree. Every fleet pointer
   (`/bp/ami/fleets/...`) that names an image of the tree goes back to the newest image it
   held before, outside the tree (its SSM history), never "whatever is current". A pointer
   that held one once and was moved since is left alone and reported. Refused, changing
   nothing, when a fleet never had another image (build a base image first) or the image
   to go back to is gone or revoked;
3. **approve_revocation** (when a production fleet or image is concerned: a second person) →
   **acquire_locks**: every affected fleet's change lock (the rollouts' lock), all or none;
4. **revoke** (only with a valid approval, when one was asked): the image and those baked
   from it are tagged `revoked` with the reason (**promote_ami** of `gpu_ami_build_and_bake`
   refuses them from then on), each pointer is put back if it still names the image of the
   tree it named, and each of those fleets with nodes starts an instance refresh;
5. **wait_for_refreshes** (deferred, one per fleet) → **record_revocation**: an audit
   record at `s3://bp-logs-<account>/audit/ami-revocations/<image>/<run_id>.jsonl` and a
   critical alert; **release_locks** whatever happened.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from bp_aws.sensors.autoscaling import InstanceRefreshSensor
from bp_tasks import gpu_ami_revoke as tasks
from bp_tasks import params as form
from bp_tasks.approvals import FleetChangeApproval
from include.amis import revocation


@dag(
    schedule=None,
    start_date=form.PLATFORM_START,
    catchup=False,
    max_active_runs=1,  # one revocation at a time: two would read the same pointers' histories
    doc_md=__doc__,
    tags=["platform", "ami"],
    default_args={"owner": "platform", "retries": 0},
    params={
        "image_id": Param(
            type="string",
            pattern=form.form_pattern(revocation.IMAGE_ID_PATTERN),
            title="Image",
            description="The AMI to revoke, e.g. ami-0123456789abcdef0.",
        ),
        "reason": Param(
            type="string",
            pattern=form.form_pattern(revocation.REASON_PATTERN),
            maxLength=revocation.REASON_MAX_LENGTH,
            title="Reason",
            description="Why, in one line: it is tagged on the image and said in the alert.",
        ),
        "aws_conn_id": form.aws_conn_id_param(),
    },
)
def gpu_ami_revoke():
    request = tasks.validate_request()
    plan = tasks.plan_revocation(request)
    approve = FleetChangeApproval(
        task_id="approve_revocation",
        stage="production",
        change="the image was not revoked",
        subject="Revoke a GPU AMI in production?",
        body=tasks.revocation_question(request, plan),
        response_timeout=timedelta(days=1),
    )
    locks = tasks.acquire_locks()
    revoked = tasks.revoke(request)
    refreshed = InstanceRefreshSensor.partial(
        task_id="wait_for_refreshes",
        aws_conn_id="{{ params.aws_conn_id }}",
        deferrable=True,
        poke_interval=15,
        **form.SAFE_TO_RETRY,
    ).expand_kwargs(revoked)
    recorded = tasks.record_revocation(request)

    tasks.revocation_path(plan) >> [approve, locks]
    approve >> locks >> revoked >> refreshed >> recorded
    [locks, revoked, refreshed, recorded] >> tasks.release_locks().as_teardown(setups=locks)


gpu_ami_revoke()
