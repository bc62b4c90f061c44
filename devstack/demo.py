"""``make demo``: the whole pipeline on the local stack, driven through the REST API.

Each capability adds its runs to :data:`SCENARIOS`; the demo triggers them in order
with realistic conf, waits for each, prints a summary and exits 0 only if every run
ended as expected.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack import baseline, economics_demo
from devstack.economics_demo import EconomicsDemo
from devstack.stack import REPO_ROOT, LocalStack, StackError
from include.cli.airflow_client import AirflowApiError, AirflowClient, DagRun
from include.naming.fleet import Fleet


@dataclass(frozen=True)
class Scenario:
    dag_id: str
    conf: dict[str, Any]
    purpose: str
    #: Where a reader finds what the run produced, given the stack and the finished run.
    outputs: Callable[[LocalStack, DagRun], list[str]] = field(default=lambda stack, run: [])
    #: What happens in the platform before the run (an admin's or the scaler's doing); says what it did.
    before: Callable[[LocalStack], str] | None = None


#: A try's own log; a deferred try also leaves ``attempt=N.log.trigger.<id>.log`` beside it.
_ATTEMPT_LOG = re.compile(r"attempt=(\d+)\.log")


def task_log_paths(*task_ids: str) -> Callable[[LocalStack, DagRun], list[str]]:
    """The last attempt's log file of each task (Airflow's default log layout)."""

    def paths(stack: LocalStack, run: DagRun) -> list[str]:
        root = stack.airflow_home / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
        found = []
        for task_id in task_ids:
            attempts = sorted(
                (p for p in (root / f"task_id={task_id}").glob("attempt=*.log") if _ATTEMPT_LOG.fullmatch(p.name)),
                key=lambda p: int(_ATTEMPT_LOG.fullmatch(p.name)[1]),
            )
            found.append(str(attempts[-1] if attempts else root / f"task_id={task_id}"))
        return found

    return paths


def scenarios(economics: EconomicsDemo) -> list[Scenario]:
    """The demo's runs, in order (each capability adds its own)."""
    last_day = economics.window.last_day
    week = economics.window.review_week
    return [
        Scenario(
            dag_id="platform_preflight",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default"},
            purpose="deploy blockers of the staging fleet",
            outputs=task_log_paths("check_deploy_blockers"),
        ),
        Scenario(
            dag_id="gpu_ami_build_and_bake",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "mode": "bake"},
            purpose="bake the active bundle into the staging fleet's AMI and promote it",
            outputs=task_log_paths("check_bundle", "packer_build", "promote_ami", "apply_ami_retention"),
        ),
        Scenario(
            dag_id="gpu_fleet_provision",
            conf={"fleet_stage": "staging", "fleet_slug": "gpu-default", "action": "apply"},
            purpose="provision the staging fleet from its desired_config (shared + fleet stacks)",
            outputs=task_log_paths("read_desired_config", "deploy_fleet_stack", "verify_fleet"),
        ),
        Scenario(
            dag_id="gpu_bundle_rollout",
            conf={
                "fleet_stage": "staging",
                "fleet_slug": "gpu-default",
                "bundle_id": baseline.sample_bundle_id("v2"),
                "strategy": "pointer_only",
            },
            purpose="point the staging fleet (at 0 instances) at bundle v2",
            outputs=task_log_paths("check_bundle", "move_pointer", "record_audit"),
        ),
        Scenario(
            dag_id="gpu_bundle_rollout",
            conf={
                "fleet_stage": "staging",
                "fleet_slug": "gpu-default",
                "bundle_id": baseline.sample_bundle_id("v3"),
                "strategy": "refresh",
                "checkpoint_percentages": [50, 100],
            },
            purpose="roll bundle v3 to the staging fleet's 2 nodes by instance refresh, verified on each node",
            outputs=task_log_paths("wait_for_refresh", "verify_fleet_bundle", "record_audit"),
            before=scale_staging_fleet,
        ),
        Scenario(
            dag_id="ai_economics_daily",
            conf={"day": last_day.isoformat()},
            purpose=f"AI cost and margin of {last_day} (with a planted token-burn anomaly)",
            outputs=lambda stack, run: [
                f"run folder {economics.run_dir(last_day)} (summary.json, gx_validation.json, economics.lp)",
                f"warehouse {economics.warehouse_path}",
                f"parquet s3://{stack.logs_bucket}/economics/<table>/day={last_day}/ (in the emulator)",
                *task_log_paths("compute", "send_alerts")(stack, run),
            ],
        ),
        Scenario(
            dag_id="weekly_review_pack",
            conf={"week": str(week)},
            purpose=f"the weekly review pack of {week}, the last full week",
            outputs=lambda stack, run: [
                *(f"pack {path}" for path in sorted(economics.pack_dir(week).glob("weekly-review-*"))),
                f"s3://{stack.logs_bucket}/reports/weekly/{week}/ (in the emulator; presigned links in the notice)",
                *task_log_paths("build_pack", "announce")(stack, run),
            ],
        ),
    ]


@dataclass
class Outcome:
    scenario: Scenario
    run: DagRun | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.run is not None and self.run.state == "success"


def wait_for_dag(client: AirflowClient, dag_id: str, timeout: float = 180) -> None:
    """Wait until the dag-processor has parsed ``dag_id``; fail fast on an import error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.get_dag(dag_id)
            return
        except AirflowApiError as error:
            if error.status != 404:
                raise
        errors = client.import_errors()
        if errors:
            details = "; ".join(f"{e['filename']}: {e['stack_trace'].strip().splitlines()[-1]}" for e in errors)
            raise StackError(f"DAG files failed to import: {details}")
        if time.monotonic() > deadline:
            raise StackError(f"DAG {dag_id} was not parsed within {timeout:.0f}s")
        time.sleep(1)


def run_scenario(client: AirflowClient, scenario: Scenario, stack: LocalStack, timeout: float = 900) -> Outcome:
    if scenario.before is not None:
        print(f"  {scenario.before(stack)}", flush=True)
    wait_for_dag(client, scenario.dag_id)
    client.set_paused(scenario.dag_id, False)
    run = client.trigger(scenario.dag_id, scenario.conf)
    print(f"  triggered {scenario.dag_id} ({scenario.purpose}) as {run.run_id}", flush=True)
    run = client.wait_for_run(scenario.dag_id, run.run_id, timeout=timeout, poll=1.0)
    return Outcome(scenario, run)


def print_summary(stack: LocalStack, outcomes: list[Outcome], out=sys.stdout) -> None:
    out.write("\nDemo summary\n")
    header = f"{'DAG':<28} {'STATE':<8} {'DURATION':>9}  OUTPUTS\n"
    out.write(header + "-" * (len(header) + 20) + "\n")
    for outcome in outcomes:
        run = outcome.run
        state = run.state if run else "error"
        duration = f"{run.duration_seconds:.1f}s" if run and run.duration_seconds is not None else "-"
        outputs = outcome.scenario.outputs(stack, run) if run else []
        if run:
            outputs.insert(0, f"{stack.api_url}/dags/{run.dag_id}/runs/{run.run_id}")
        lines = outputs or [outcome.error or ""]
        out.write(f"{outcome.scenario.dag_id:<28} {state:<8} {duration:>9}  {lines[0]}\n")
        for line in lines[1:]:
            out.write(f"{'':<48}{line}\n")
    out.write(f"\nService logs: {stack.logs_dir}\n")


def activate_sample_bundle(aws_client: Callable[[str], Any], seeded: baseline.Baseline) -> None:
    """What an admin does in Admin -> Assets: make the sample bundle each fleet's active one."""
    for stage, slug in seeded.fleets:
        aws_client("ssm").put_parameter(
            Name=Fleet(stage, slug).active_bundle, Value=seeded.sample_bundle_prefix, Type="String", Overwrite=True
        )


def scale_staging_fleet(stack: LocalStack, capacity: int = 2) -> str:
    """What the 0 -> 1 -> N policies do when jobs arrive: the staging fleet gets nodes."""
    group = Fleet("staging", "gpu-default").auto_scaling_group
    stack.aws_client()("autoscaling").set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity)
    return f"jobs arrived: {group} scaled to {capacity} nodes in the emulator"


def upload_bundle_releases(aws_client: Callable[[str], Any], seeded: baseline.Baseline) -> None:
    """What an admin does in Admin -> Assets: new bundles for the rollouts to ship."""
    for release in ("v2", "v3"):
        baseline.upload_sample_bundle(aws_client("s3"), seeded.models_bucket, baseline.sample_bundle_id(release))


def prepare_stack(stack: LocalStack, last_day: date) -> Callable[[Callable[[str], Any]], tuple]:
    """The seed step: the AWS baseline, then the economics data and its Airflow settings."""

    def seed(aws_client: Callable[[str], Any]) -> tuple:
        seeded = baseline.seed_baseline(aws_client)
        activate_sample_bundle(aws_client, seeded)
        upload_bundle_releases(aws_client, seeded)
        economics = economics_demo.prepare(stack.home / "economics", last_day, aws_client)
        stack.extra_env.update(economics.airflow_env(seeded.logs_bucket))
        stack.logs_bucket = seeded.logs_bucket
        return seeded, economics

    return seed


def main(home: Path = REPO_ROOT / ".local" / "demo") -> int:
    started = time.monotonic()
    stack = LocalStack(home)
    last_day = datetime.now(UTC).date() - timedelta(days=1)
    print(f"Starting the local stack under {stack.home} (moto {stack.moto_url}, Airflow {stack.api_url})", flush=True)
    outcomes: list[Outcome] = []
    try:
        seeded, economics = stack.start(seed=prepare_stack(stack, last_day))
        print(f"  seeded the platform baseline in account {seeded.account_id} ({len(seeded.fleets)} fleet(s))")
        print(
            f"  seeded {economics.counts['ai_usage_logs']} AI requests over {economics.window.days} days "
            f"({economics.window.first_day} to {last_day}) and 28 days of warehouse history"
        )
        runs = scenarios(economics)
        print(
            f"  Airflow is healthy after {time.monotonic() - started:.0f}s; running {len(runs)} DAG run(s)", flush=True
        )
        client = stack.client()
        for scenario in runs:
            try:
                outcomes.append(run_scenario(client, scenario, stack))
            except (AirflowApiError, StackError, TimeoutError) as error:
                outcomes.append(Outcome(scenario, None, str(error)))
        print_summary(stack, outcomes)
    except StackError as error:
        print(f"error: the local stack did not start: {error}", file=sys.stderr)
        return 1
    finally:
        stack.stop()
    failed = [o for o in outcomes if not o.ok]
    verdict = "every run succeeded" if not failed else f"{len(failed)} run(s) did not succeed"
    print(f"Demo finished in {time.monotonic() - started:.0f}s: {verdict}.")
    return 0 if outcomes and not failed else 1
