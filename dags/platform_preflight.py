"""
### Platform preflight: deploy blockers, before anyone builds or rolls out

Checks what the infrastructure review (seed 003) found blocking go-live, and reports
**every** problem as one table in the `check_deploy_blockers` task log:

| check | critical when |
|---|---|
| fleet secret `/bp/fleets/<stage>/fleet-secret` | missing or `CHANGE_ME_AFTER_DEPLOY` in a stage with fleets |
| models bucket `/bp/models/bucket` | missing, or the bucket it names does not exist |
| AMI pointer `/bp/ami/fleets/<stage>/<slug>` | names an image that is not `available` |
| active bundle `/bp/fleets/<stage>/<slug>/active_bundle` | names a manifest that is not in the models bucket |
| desired config `/bp/fleets/<stage>/<slug>/desired_config` | is refused by the fleet templates |

The run fails if anything is critical; warnings are reported and the run succeeds.
It only reads: it is safe to run at any time, from the UI or from CI
(`python -m include.cli.trigger platform_preflight --conf '{"fleet_stage": "staging"}' --wait`).
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowFailException

from bp_aws.params import aws_conn_id_param
from include import preflight, ssm_paths

log = logging.getLogger("bp.platform_preflight")


@dag(
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    doc_md=__doc__,
    tags=["platform", "preflight", "read-only"],
    default_args={"owner": "platform", "retries": 1, "retry_delay": pendulum.duration(seconds=30)},
    params={
        "fleet_stage": Param(
            None,
            type=["null", "string"],
            enum=[None, *ssm_paths.FLEET_STAGES],
            title="Fleet stage",
            description="Only check this stage (empty: every stage).",
        ),
        "fleet_slug": Param(
            None,
            type=["null", "string"],
            pattern=ssm_paths.FLEET_SLUG_PATTERN,
            maxLength=ssm_paths.FLEET_SLUG_MAX_LENGTH,
            title="Fleet slug",
            description="Only check this fleet, e.g. `gpu-default` (empty: every fleet).",
        ),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def platform_preflight():
    @task
    def validate_request(params: dict | None = None) -> dict:
        """Domain checks on the params, before any AWS call."""
        try:
            scope = preflight.Scope(params["fleet_stage"], params["fleet_slug"])
        except ssm_paths.InvalidFleetName as error:
            raise AirflowFailException(f"Invalid request: {error}. Nothing was checked.") from error
        log.info("Checking stages %s, fleet %s", ", ".join(scope.stages), scope.fleet_slug or "(all)")
        return {"fleet_stage": scope.fleet_stage, "fleet_slug": scope.fleet_slug}

    @task
    def check_deploy_blockers(scope: dict, params: dict | None = None) -> dict:
        """Inspect the platform, log every finding as a table, fail on any critical one."""
        from airflow.sdk.log import mask_secret

        from bp_aws.clients import aws_client_factory

        findings = preflight.inspect_platform(
            aws_client_factory(params["aws_conn_id"]), preflight.Scope(**scope), on_secret=mask_secret
        )
        log.info("Preflight findings:\n%s", preflight.render_table(findings))
        counts = {severity.value: 0 for severity in preflight.Severity}
        for finding in findings:
            counts[finding.severity.value] += 1
        log.info("Preflight summary: %s", ", ".join(f"{n} {s}" for s, n in counts.items()))
        try:
            preflight.raise_for_critical(findings)
        except preflight.PreflightFailed as error:
            raise AirflowFailException(f"{error}. Nothing was changed: preflight only reads.") from error
        return counts

    check_deploy_blockers(validate_request())


platform_preflight()
