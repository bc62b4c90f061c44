"""Trigger a DAG run through Airflow's REST API and follow it; read logs, answer
approvals and list runs. For CI systems and on-call people::

    python -m include.cli.trigger platform_preflight --conf '{"fleet_stage": "staging"}' --wait
    python -m include.cli.trigger runs gpu_bundle_rollout
    python -m include.cli.trigger logs gpu_bundle_rollout <run_id> [task_id] [--try N]
    python -m include.cli.trigger approve|reject gpu_ami_build_and_bake <run_id> approve_promotion [--wait]

Connection settings: ``--url`` or ``AIRFLOW_API_URL`` (default ``http://127.0.0.1:8080``;
https for any other host, unless ``--insecure-http``); ``AIRFLOW_USERNAME`` with
``AIRFLOW_PASSWORD`` or ``--password-file``, or ``AIRFLOW_API_TOKEN`` or ``--token-file``.
Secrets are never taken from the command line (other users can read it). Only the
standard library is needed.

``approve``/``reject`` answer as the given user: when that user may not answer (the run's
own triggerer, or anyone not among the approval's assigned users) nothing is sent and one
line names who may. An approval the run has not reached yet is waited for (``--timeout``,
default 600 s), so it can be answered right after the trigger; ``--wait`` then follows
the run to its end. An answer is held until the pause is 3 s old (Airflow 3.3.2 races an
earlier one; the approval survives it either way).

Exit codes: 0 the run succeeded (or was queued, without ``--wait``); 1 the run failed
(the failing tasks' logs are printed); 2 bad arguments, conf or credentials missing, or
an approval this user may not answer; 3 the api-server refused or could not be reached;
4 ``--wait`` timed out.
Every error is one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TextIO

from include.cli import commands
from include.cli.airflow_client import AirflowApiError, AirflowClient, CredentialsMissing, check_transport

EXIT_OK, EXIT_RUN_FAILED, EXIT_USAGE, EXIT_API, EXIT_TIMEOUT = 0, 1, 2, 3, 4
SUBCOMMANDS = ("logs", "approve", "reject", "runs")


class _Parser(argparse.ArgumentParser):
    def __init__(self, **kwargs) -> None:
        # no abbreviations: "--password x" must not quietly become "--password-file x"
        super().__init__(allow_abbrev=False, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, like every other usage error
        self.exit(EXIT_USAGE, f"error: {message}\n")


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=os.environ.get("AIRFLOW_API_URL", "http://127.0.0.1:8080"))
    parser.add_argument("--username", default=os.environ.get("AIRFLOW_USERNAME"))
    parser.add_argument("--password-file", type=Path, help="a file holding the password (else AIRFLOW_PASSWORD)")
    parser.add_argument("--token-file", type=Path, help="a file holding a token (else AIRFLOW_API_TOKEN)")
    parser.add_argument("--insecure-http", action="store_true", help="allow plain http to another host")


def _wait_args(parser: argparse.ArgumentParser, timeout_help: str, timeout: float) -> None:
    parser.add_argument("--timeout", type=float, default=timeout, help=timeout_help)
    parser.add_argument("--poll", type=float, default=3.0, help="seconds between polls (default 3)")


def _parse_args(argv: list[str]) -> argparse.Namespace:
    prog = "python -m include.cli.trigger"
    # the module's docstring is the help: the commands, the connection settings, the exit codes
    description = __doc__.replace("::", ":").replace("``", "")
    if argv and argv[0] in SUBCOMMANDS:
        parser = _Parser(prog=f"{prog} {argv[0]}", description=description)
        parser.add_argument("dag_id")
        if argv[0] == "runs":
            parser.add_argument("--limit", type=int, default=10, help="how many runs (default 10)")
        else:
            parser.add_argument("run_id")
            parser.add_argument("task_id", nargs="?" if argv[0] == "logs" else None)
        if argv[0] == "logs":
            parser.add_argument("--try", dest="try_number", type=int, help="a try of the task (default: its last)")
        if argv[0] in ("approve", "reject"):
            parser.add_argument("--wait", action="store_true", help="then wait for the run to finish")
            asked = "seconds to wait for the approval to be asked, and with --wait for the run (default 600)"
            _wait_args(parser, asked, 600)
        _connection_args(parser)
        args = parser.parse_args(argv[1:])
        args.command = argv[0]
        return args
    parser = _Parser(prog=prog, description=description)
    parser.add_argument("dag_id")
    parser.add_argument("--conf", default="{}", help="the run's conf, a JSON object")
    parser.add_argument("--run-id", help="a run id of your own (re-using one is refused: safe retries)")
    parser.add_argument("--wait", action="store_true", help="wait for the run to finish")
    _wait_args(parser, "seconds to wait (default 3600)", 3600)
    parser.add_argument("--unpause", action="store_true", help="unpause the DAG if it is paused")
    _connection_args(parser)
    args = parser.parse_args(argv)
    args.command = "trigger"
    return args


def _parse_conf(text: str) -> dict:
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--conf is not valid JSON: {error}") from None
    if not isinstance(conf, dict):
        raise ValueError(f"--conf must be a JSON object, not {type(conf).__name__}")
    return conf


def _secret(path: Path | None, variable: str) -> str | None:
    if path is not None:
        try:
            return path.read_text().strip()
        except OSError as error:
            raise ValueError(f"cannot read {path}: {error.strerror}") from None
    return os.environ.get(variable)


def _client(args: argparse.Namespace) -> AirflowClient:
    check_transport(args.url, insecure_http=args.insecure_http)
    return AirflowClient(
        args.url,
        username=args.username,
        password=_secret(args.password_file, "AIRFLOW_PASSWORD"),
        token=_secret(args.token_file, "AIRFLOW_API_TOKEN"),
    )


def main(argv: list[str] | None = None, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        conf = _parse_conf(args.conf) if args.command == "trigger" else {}
        client = _client(args)
        if args.command == "trigger":
            return commands.trigger(client, args, conf, out, err)
        if args.command == "logs":
            return commands.logs(client, args.dag_id, args.run_id, args.task_id, args.try_number, out)
        if args.command == "runs":
            return commands.runs(client, args.dag_id, args.limit, out)
        return commands.answer(client, args, out)
    except (ValueError, CredentialsMissing) as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE
    except AirflowApiError as error:
        err.write(f"error: {error}\n")
        return EXIT_USAGE if error.status in (400, 404, 409, 422) else EXIT_API
    except TimeoutError as error:
        err.write(f"error: {error}\n")
        return EXIT_TIMEOUT


if __name__ == "__main__":
    sys.exit(main())
