"""Task bodies of ``platform_preflight``: read the platform, report every blocker."""

from __future__ import annotations

import logging

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowFailException

from bp_tasks.common import report_outcome, validated
from include.fleets import preflight

log = logging.getLogger("bp.platform_preflight")


@task(multiple_outputs=False)
def validate_request(params: dict | None = None, dag_run=None, dag=None) -> dict:
    """Domain checks on the params, before any AWS call."""
    scope = validated(
        preflight.Scope.of,
        params,
        "Nothing was checked.",
        dag_run=dag_run,
        dag=dag,
    )
    log.info("Checking stages %s, fleet %s", ", ".join(scope.stages), scope.fleet_slug or "(all)")
    return scope.as_dict()


@task(multiple_outputs=False)
def check_deploy_blockers(scope: dict, params: dict | None = None) -> dict:
    """Inspect the platform, log every finding as a table, fail on any critical one."""
    from airflow.sdk.log import mask_secret

    from bp_aws.hooks.clients import aws_client_factory

    findings = preflight.inspect_platform(
        aws_client_factory(params["aws_conn_id"]), preflight.Scope.of(scope), on_secret=mask_secret
    )
    counts = {severity.value: 0 for severity in preflight.Severity}
    for finding in findings:
        counts[finding.severity.value] += 1
    report_outcome(
        "Preflight findings:",
        *preflight.render_table(findings).splitlines(),
        "Preflight summary: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
    )
    try:
        preflight.raise_for_critical(findings)
    except preflight.PreflightFailed as error:
        raise AirflowFailException(f"{error}. Nothing was changed: preflight only reads.") from error
    return counts
