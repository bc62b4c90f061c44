"""What each command of :mod:`include.cli.trigger` does against the api-server."""

from __future__ import annotations

import difflib
import json
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from include.cli.airflow_client import (
    AWAITING_INPUT,
    FAILED_TASK_STATES,
    TERMINAL_RUN_STATES,
    AirflowApiError,
    AirflowClient,
    DagRun,
)
from include.form_params import one_line_refusal
from include.tables import format_table

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE = 0, 1, 2
#: An output longer than this is cut in the summary (the full value is the task's XCom).
OUTPUT_CHARS = 300
#: A task in one of these states will never ask for an answer in this run.
DONE_TASK_STATES = frozenset({"success", "failed", "skipped", "upstream_failed", "removed"})
#: the trigger rule Airflow gives a task marked ``as_teardown()``
TEARDOWN_RULE = "all_done_setup_success"


def unknown_keys(conf: dict[str, Any], params: dict[str, Any]) -> str | None:
    """The conf keys the DAG doesn't take (Airflow would ignore them and use the defaults)."""
    unknown = sorted(set(conf) - set(params))
    if not unknown:
        return None
    named = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(params), n=1)
        named.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return f"unknown conf key(s) {', '.join(named)}; {len(params)} param(s): {', '.join(params)}"


def trigger(client: AirflowClient, args: Any, conf: dict[str, Any], out: TextIO, err: TextIO) -> int:
    dag = client.get_dag(args.dag_id)
    params = client.dag_params(args.dag_id)
    problem = unknown_keys(conf, params)
    if problem:
        err.write(f"error: DAG {args.dag_id!r} refused the conf: {problem}\n")
        return EXIT_USAGE
    if dag.get("is_paused"):
        if not args.unpause:
            err.write(f"error: DAG {args.dag_id!r} is paused, so its run would never start; pass --unpause\n")
            return EXIT_USAGE
        client.set_paused(args.dag_id, False)
    try:
        run = client.trigger(args.dag_id, conf, run_id=args.run_id)
    except AirflowApiError as error:
        if error.status == 400:
            refused = f"the run id {args.run_id!r}" if args.run_id and "run_id" in str(error) else "the conf"
            err.write(f"error: DAG {args.dag_id!r} refused {refused}: {one_line_refusal(str(error))}\n")
            return EXIT_USAGE
        if error.status == 409 and args.run_id:
            existing = client.get_run(args.dag_id, args.run_id)
            err.write(
                f"error: run {args.run_id!r} of {args.dag_id} already exists ({existing.state}); "
                f"see {client.run_url(args.dag_id, args.run_id)} or choose another --run-id\n"
            )
            return EXIT_USAGE
        raise
    out.write(f"triggered {run.dag_id} run {run.run_id} ({run.state}): {client.run_url(run.dag_id, run.run_id)}\n")
    return follow(client, run, args.timeout, args.poll, out) if args.wait else EXIT_OK


def follow(client: AirflowClient, run: DagRun, timeout: float, poll: float, out: TextIO) -> int:
    """Wait for the run's end, then print what it did (or its failed tasks' logs)."""
    run = wait(client, run, timeout, poll, out)
    duration = run.duration_seconds
    out.write(f"final state: {run.state}" + (f" after {duration:.1f}s" if duration is not None else "") + "\n")
    if run.state != "success":
        print_failed_task_logs(client, run, out)
        out.write(f"the run: {client.run_url(run.dag_id, run.run_id)}\n")
        return EXIT_RUN_FAILED
    print_outputs(client, run, out)
    return EXIT_OK


def wait(client: AirflowClient, run: DagRun, timeout: float, poll: float, out: TextIO) -> DagRun:
    """Follow the run to its end, saying each state change and each approval it waits for."""
    deadline = time.monotonic() + timeout
    said: set[str] = set()
    last_state = None
    while True:
        run = client.get_run(run.dag_id, run.run_id)
        if run.state != last_state:
            out.write(f"{run.dag_id} {run.run_id}: {run.state}\n")
            last_state = run.state
        if run.state in TERMINAL_RUN_STATES:
            return run
        for task_id in client.awaiting_input(run.dag_id, run.run_id):
            if task_id not in said:
                said.add(task_id)
                url = client.run_url(run.dag_id, run.run_id, task_id)
                out.write(
                    f"waiting for approval on {task_id} ({url}); answer in the UI, or as an approver other than "
                    f"the one who triggered it: python -m include.cli.trigger approve {run.dag_id} {run.run_id} "
                    f"{task_id} (or reject)\n"
                )
        if time.monotonic() > deadline:
            waiting = f" waiting for approval on {', '.join(sorted(said))}" if said else ""
            raise TimeoutError(f"run {run.run_id} of {run.dag_id} still {run.state}{waiting} after {timeout:.0f}s")
        out.flush()
        time.sleep(poll)


def print_failed_task_logs(client: AirflowClient, run: DagRun, out: TextIO) -> None:
    """Print the last try's log of every task that failed in ``run``."""
    for task in client.task_instances(run.dag_id, run.run_id):
        if task["state"] not in FAILED_TASK_STATES or not task.get("try_number"):
            continue
        out.write(f"----- log of {task['task_id']} (try {task['try_number']}, {task['state']}) -----\n")
        for line in client.task_log_lines(run.dag_id, run.run_id, task["task_id"], task["try_number"]):
            out.write(f"{line}\n")


def print_outputs(client: AirflowClient, run: DagRun, out: TextIO) -> None:
    """The run's page, then what its tasks said they did (findings, files, skip reasons,
    the next command), in the order they ran; a DAG whose tasks say nothing shows what
    its last tasks returned."""
    out.write(f"the run: {client.run_url(run.dag_id, run.run_id)}\n")
    said = client.outcomes(run.dag_id, run.run_id)
    for task_id, lines in said.items():
        out.write(f"{task_id}:\n" + "".join(f"  {line}\n" for line in lines))
    if said:
        return
    tasks = client.dag_tasks(run.dag_id)
    # a teardown (lock release, clean-up) ends the graph but is not what the run produced
    teardowns = {t["task_id"] for t in tasks if t.get("trigger_rule") == TEARDOWN_RULE}
    leaves = [
        t["task_id"]
        for t in tasks
        if t["task_id"] not in teardowns and not set(t.get("downstream_task_ids") or ()) - teardowns
    ]
    states = {t["task_id"]: t["state"] for t in client.task_instances(run.dag_id, run.run_id)}
    for task_id in leaves:
        if states.get(task_id) != "success":
            continue
        try:
            value = client.xcom(run.dag_id, run.run_id, task_id)
        except AirflowApiError:
            continue  # it returned nothing
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out.write(f"output of {task_id}: {text[:OUTPUT_CHARS]}{'…' if len(text) > OUTPUT_CHARS else ''}\n")


def logs(client: AirflowClient, dag_id: str, run_id: str, task_id: str | None, try_number: int | None, out) -> int:
    """One task's log (its last try by default), or every task's in the run's order."""
    tasks = client.task_instances(dag_id, run_id)
    chosen = [t for t in tasks if task_id in (None, t["task_id"])]
    if not chosen:
        raise AirflowApiError(f"run {run_id} of {dag_id} has no task {task_id!r}", 404)
    for task in sorted(chosen, key=lambda t: (t.get("start_date") or "~", t["task_id"])):
        attempt = try_number or task.get("try_number") or 0
        if not attempt:
            out.write(f"----- {task['task_id']}: {task['state'] or 'not started'}, no log -----\n")
            continue
        out.write(f"----- log of {task['task_id']} (try {attempt}, {task['state']}) -----\n")
        for line in client.task_log_lines(dag_id, run_id, task["task_id"], attempt):
            out.write(f"{line}\n")
    return EXIT_OK


def runs(client: AirflowClient, dag_id: str, limit: int, out: TextIO) -> int:
    """The newest runs: id, state, when it started and how long it took."""
    rows = []
    for run in client.list_runs(dag_id, limit=limit):
        duration = f"{run.duration_seconds:.1f}s" if run.duration_seconds is not None else "-"
        rows.append((run.run_id, run.state, (run.start_date or "-")[:19], duration))
    if not rows:  # a header with no rows reads as a broken command
        out.write(f"{dag_id} has no runs yet (a scheduled DAG's first run comes at its start date)\n")
        return EXIT_OK
    out.write(format_table(("RUN ID", "STATE", "STARTED", "DURATION"), rows) + "\n")
    return EXIT_OK


class AnswerRefused(ValueError):
    """The caller may not answer this approval: nothing was sent (exit 2)."""


#: How long after a task pauses for a person the client waits before answering: Airflow
#: 3.3.2 fails a resumed task whose answer came before the scheduler handled the pause
#: (apache/airflow #72716). The approval retries and keeps an answer given sooner
#: (bp_tasks.approvals); waiting here spares that retry.
SETTLE_SECONDS = 3.0


def answer(client: AirflowClient, args: Any, out: TextIO) -> int:
    """Approve or reject a task waiting for a person: refused up front, naming who may
    answer, when the caller is not one of them. An approval the run has not reached yet
    is waited for (up to ``--timeout``), so it can be answered right after the trigger;
    with ``--wait`` the run is then followed to its end."""
    dag_id, run_id, task_id = args.dag_id, args.run_id, args.task_id
    wait_for_question(client, dag_id, run_id, task_id, args.timeout, args.poll, out)
    detail = client.hitl_detail(dag_id, run_id, task_id) or {}
    assigned = detail.get("assigned_users") or []
    if assigned and client.me() not in {str(user["id"]) for user in assigned}:
        raise AnswerRefused(_not_yours(client, dag_id, run_id, task_id, assigned))
    paused_for = _seconds_since(detail.get("created_at"))
    if paused_for is not None and paused_for < SETTLE_SECONDS:
        time.sleep(SETTLE_SECONDS - paused_for)
    choice = "Approve" if args.command == "approve" else "Reject"
    try:
        client.respond(dag_id, run_id, task_id, [choice])
    except AirflowApiError as error:
        if error.status == 403:
            raise AnswerRefused(
                f"{client.username or 'this user'} may not answer {task_id}: Airflow refused ({error}); "
                "answering approvals needs the Approver role"
            ) from None
        raise
    out.write(f"{choice} sent for {task_id}: {client.run_url(dag_id, run_id, task_id)}\n")
    return follow(client, client.get_run(dag_id, run_id), args.timeout, args.poll, out) if args.wait else EXIT_OK


def wait_for_question(
    client: AirflowClient, dag_id: str, run_id: str, task_id: str, timeout: float, poll: float, out: TextIO
) -> None:
    """Return once ``task_id`` waits for a person; refuse at once when it never will (the
    run ended, the task is done or is not in the DAG), and after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    said = False
    while True:
        states = {t["task_id"]: t["state"] for t in client.task_instances(dag_id, run_id)}
        if states.get(task_id) == AWAITING_INPUT:
            return
        waiting = sorted(task for task, state in states.items() if state == AWAITING_INPUT)
        run = client.get_run(dag_id, run_id)
        if task_id not in states:
            raise AirflowApiError(f"run {run_id} of {dag_id} has no task {task_id!r}", 404)
        if run.state in TERMINAL_RUN_STATES or states[task_id] in DONE_TASK_STATES:
            raise AirflowApiError(
                f"{task_id} of run {run_id} is not waiting for an answer ({states[task_id]}; the run is {run.state})"
                + (f"; waiting: {', '.join(waiting)}" if waiting else ""),
                409,
            )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{task_id} of run {run_id} did not ask for an answer within {timeout:.0f}s")
        if not said:
            out.write(f"{task_id} of run {run_id} has not asked yet ({states[task_id] or 'not started'}); waiting\n")
            out.flush()
            said = True
        time.sleep(poll)


def _not_yours(client: AirflowClient, dag_id: str, run_id: str, task_id: str, assigned: list[dict]) -> str:
    who = client.username or "this user"
    may = ", ".join(sorted(str(user["name"]) for user in assigned))
    triggered_by = client.get_run(dag_id, run_id).triggering_user_name
    why = (
        f"{who} triggered this run, and a second person must approve it"
        if triggered_by and triggered_by == client.username
        else f"{who} is not one of them"
    )
    return f"{who} may not answer {task_id} of run {run_id}: only {may} may ({why}). Nothing was sent."


def _seconds_since(stamp: str | None) -> float | None:
    if not stamp:
        return None
    then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (datetime.now(UTC) - then).total_seconds()
