"""Trigger a DAG run through Airflow's REST API and, with ``--wait``, follow it to the end.

For CI systems::

    python -m include.cli.trigger platform_preflight --conf '{"fleet_stage": "staging"}' --wait

Connection settings come from flags or the environment: ``AIRFLOW_API_URL``
(default ``http://127.0.0.1:8080``), ``AIRFLOW_API_TOKEN``, or ``AIRFLOW_USERNAME``
and ``AIRFLOW_PASSWORD``. Only the standard library is needed.

Exit codes: 0 the run succeeded (or was queued, without ``--wait``); 1 the run
failed (the failing tasks' logs are printed); 2 bad arguments or conf; 3 the
api-server refused or could not be reached; 4 ``--wait`` timed out.
Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TextIO

from include.cli.airflow_client import FAILED_TASK_STATES, AirflowApiError, AirflowClient, DagRun

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_API, EXIT_TIMEOUT = 0, 1, 2, 3, 4


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other usage error
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m include.cli.trigger", description=__doc__.split("\n\n")[0])
    parser.add_argument("dag_id")
    parser.add_argument("--conf", default="{}", help="the run's conf, a JSON object")
    parser.add_argument("--run-id", help="a run id of your own (re-using one is refused: safe retries)")
    parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (default 3600)")
    parser.add_argument("--poll", type=float, default=3.0, help="seconds between polls (default 3)")
    parser.add_argument("--unpause", action="store_true", help="unpause the DAG if it is paused")
    parser.add_argument("--url", default=os.environ.get("AIRFLOW_API_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--username", default=os.environ.get("AIRFLOW_USERNAME"))
    parser.add_argument("--password", default=os.environ.get("AIRFLOW_PASSWORD"))
    parser.add_argument("--token", default=os.environ.get("AIRFLOW_API_TOKEN"))
    return parser.parse_args(argv)


def _parse_conf(text: str) -> dict:
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--conf is not valid JSON: {error}") from None
    if not isinstance(conf, dict):
        raise ValueError(f"--conf must be a JSON object, not {type(conf).__name__}")
    return conf


def print_failed_task_logs(client: AirflowClient, run: DagRun, out: TextIO) -> None:
    """Print the last try's log of every task that failed in ``run``."""
    for task in client.task_instances(run.dag_id, run.run_id):
        if task["state"] not in FAILED_TASK_STATES or not task.get("try_number"):
            continue
        out.write(f"----- log of {task['task_id']} (try {task['try_number']}, {task['state']}) -----\n")
        for line in client.task_log_lines(run.dag_id, run.run_id, task["task_id"], task["try_number"]):
            out.write(f"{line}\n")


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parse_args(argv)
    try:
        conf = _parse_conf(args.conf)
    except ValueError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE

    client = AirflowClient(args.url, username=args.username, password=args.password, token=args.token)
    try:
        dag = client.get_dag(args.dag_id)
        if dag.get("is_paused"):
            if not args.unpause:
                err.write(f"error: DAG {args.dag_id!r} is paused, so its run would never start; pass --unpause\n")
                return EXIT_USAGE
            client.set_paused(args.dag_id, False)
        run = client.trigger(args.dag_id, conf, run_id=args.run_id)
        out.write(f"triggered {run.dag_id} run {run.run_id} ({run.state})\n")
        if not args.wait:
            return EXIT_OK
        run = client.wait_for_run(
            run.dag_id,
            run.run_id,
            timeout=args.timeout,
            poll=args.poll,
            on_change=lambda r: out.write(f"{r.dag_id} {r.run_id}: {r.state}\n"),
        )
        duration = run.duration_seconds
        out.write(f"final state: {run.state}" + (f" after {duration:.1f}s" if duration is not None else "") + "\n")
        if run.state != "success":
            print_failed_task_logs(client, run, out)
            return EXIT_RUN_FAILED
        return EXIT_OK
    except AirflowApiError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE if error.status in (400, 404, 409, 422) else EXIT_API
    except TimeoutError as error:
        err.write(f"error: {error}\n")
        return EXIT_TIMEOUT


if __name__ == "__main__":
    sys.exit(main())
