"""
### GPU fleet guardrails: GPU spend leaks and drift, found every 15 minutes, the safe ones fixed

Watches every fleet under `/bp/fleets/` after the DAGs that change them (seed 003's cost
risks: Spot scale-to-zero leakage, stuck scale-in protection):

| check | finding when | fix (`remediate`) |
|---|---|---|
| scale-to-zero leak | in service, `QueueDepth` 0 for `scale_to_zero_minutes` + 10 | desired 0, protection cleared |
| stuck protection | instances protected from scale-in on an idle fleet | the same |
| capacity without work | desired > 0 with `QueueDepth` 0 and `ActiveWorkers` 0 | the same |
| no data | the fleet's `ComfyUI/Workers` metrics are missing (never read as healthy) | - |
| stale lock | the fleet's change lock is held by a run that has ended | lock released |
| AMI pointer / AMI drift | the pointer names a missing image; instances run another image | - |
| config / stack drift | desired_config not deployed; CloudFormation drift detection | - |
| orphans, spend rate | GPU instances no fleet owns (or untagged); a stage's GPU spend against `gpu_daily_budgets` | - |

1. **validate_request** → **inspect_fleets** (one fleet's AWS error is that fleet's finding)
   → **start_drift_detection** → **wait_for_drift_detection** (in the triggerer);
2. **report**: one table in the log, one alert per fleet with findings;
3. **remediation_path**: staging → **remediate_staging**, at once; production →
   **request_production_fixes**: a `gpu_fleet_remediation` run per fleet with a safe fix
   (its approvals, then the fix, apart), unless one still waits for that fleet. This run
   never waits on an approval: the next inspection starts on time whatever is pending.
   Each fix writes an immutable record under `audit/remediations/`; a re-run finds nothing
   left to fix.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, dag

from bp_aws.sensors.cloudformation import StackDriftDetectionSensor
from bp_tasks import gpu_fleet_guardrails as tasks
from bp_tasks.params import GUARDRAILS_START, SAFE_TO_RETRY, aws_conn_id_param, fleet_scope_params


@dag(
    schedule="*/15 * * * *",
    start_date=GUARDRAILS_START,
    catchup=False,
    max_active_runs=1,  # one inspection at a time: staging's fixes are never applied twice at once
    dagrun_timeout=timedelta(minutes=45),  # no approval waits here: an inspection that long is stuck
    doc_md=__doc__,
    tags=["platform", "fleet", "guardrails", "cost"],
    default_args={"owner": "platform", "retries": 1, "retry_delay": timedelta(seconds=30)},
    params={
        **fleet_scope_params(),
        "remediate": Param(
            True,
            type="boolean",
            title="Remediate",
            description_md="Apply the safe fixes: at once in staging; production's in gpu_fleet_remediation, "
            "after its approvals.",
        ),
        "aws_conn_id": aws_conn_id_param(),
    },
)
def gpu_fleet_guardrails():
    request = tasks.validate_request()
    inspected = tasks.inspect_fleets(request)
    drift = StackDriftDetectionSensor(
        task_id="wait_for_drift_detection",
        aws_conn_id="{{ params.aws_conn_id }}",
        detections=tasks.start_drift_detection(inspected),
        deferrable=True,
        poke_interval=10,
        timeout=900,
        **SAFE_TO_RETRY,
    )
    reported = tasks.report(inspected, drift.output)
    path = tasks.remediation_path(request, reported)
    path >> [tasks.remediate_staging(reported), tasks.request_production_fixes(reported)]


gpu_fleet_guardrails()
