"""The CI client's paths that need no api-server (the rest run in tests/e2e): errors as
one line with their exit code, secrets kept off the command line and the wire."""

import argparse
import io
import json
import re
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.stack import REPO_ROOT, free_port
from include.cli import commands, trigger
from include.cli.airflow_client import AirflowApiError, AirflowClient


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = trigger.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _no_credentials_from_the_developer(monkeypatch):
    for name in ("AIRFLOW_USERNAME", "AIRFLOW_PASSWORD", "AIRFLOW_API_TOKEN", "AIRFLOW_API_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("conf", "message"),
    [
        ('{"fleet_stage": "staging",}', "error: --conf is not valid JSON: Expecting property name"),
        ('["staging"]', "error: --conf must be a JSON object, not list"),
    ],
)
def test_malformed_conf_is_one_line_and_exit_2(conf, message):
    code, out, err = _run("platform_preflight", "--conf", conf, "--url", "http://127.0.0.1:9")

    assert code == trigger.EXIT_USAGE
    assert err.startswith(message)
    assert err.count("\n") == 1
    assert out == ""


def test_an_unreachable_api_server_is_one_line_and_exit_3(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AIRFLOW_USERNAME", "admin")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "x")

    code, _, err = _run("platform_preflight", "--url", url)

    assert code == trigger.EXIT_API
    assert err.startswith(f"error: cannot reach the Airflow api-server at {url}: ")
    assert err.count("\n") == 1


def test_missing_credentials_are_a_usage_error_that_says_where_to_put_them():
    code, _, err = _run("platform_preflight", "--url", f"http://127.0.0.1:{free_port()}")

    assert code == trigger.EXIT_USAGE
    assert err.startswith("error: no credentials: set AIRFLOW_USERNAME and AIRFLOW_PASSWORD")
    assert err.count("\n") == 1


def test_secrets_are_never_taken_from_the_command_line():
    with pytest.raises(SystemExit) as exit_info:
        _run("platform_preflight", "--password", "hunter2")
    assert exit_info.value.code == trigger.EXIT_USAGE
    with pytest.raises(SystemExit):
        _run("platform_preflight", "--token", "t0k3n")


def test_a_password_file_is_read(tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("AIRFLOW_USERNAME", "ci")
    args = trigger._parse_args(["platform_preflight", "--password-file", str(secret)])

    assert trigger._client(args)._password == "from-a-file"


def test_plain_http_to_another_host_is_refused_unless_asked_for(monkeypatch):
    monkeypatch.setenv("AIRFLOW_USERNAME", "ci")
    monkeypatch.setenv("AIRFLOW_PASSWORD", "x")

    code, _, err = _run("platform_preflight", "--url", "http://airflow.example.com")

    assert code == trigger.EXIT_USAGE
    assert "plain http to another host" in err
    assert "--insecure-http" in err
    args = trigger._parse_args(["platform_preflight", "--url", "http://airflow.example.com", "--insecure-http"])
    assert trigger._client(args).base_url == "http://airflow.example.com"


class _Recorder(BaseHTTPRequestHandler):
    seen: list = []
    redirect_to: str | None = None

    def do_GET(self):
        type(self).seen.append((self.server.server_address[0], self.headers.get("Authorization")))
        if self.redirect_to:
            self.send_response(302)
            self.send_header("Location", self.redirect_to + self.path)
            self.end_headers()
            return
        body = json.dumps({"dag_id": "d", "is_paused": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(host, handler):
    server = ThreadingHTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_the_bearer_token_never_follows_a_redirect_to_another_host():
    class Target(_Recorder):
        seen = []

    class Origin(_Recorder):
        seen = []

    target = _serve("127.0.0.2", Target)
    Origin.redirect_to = f"http://127.0.0.2:{target.server_address[1]}"
    origin = _serve("127.0.0.1", Origin)
    try:
        client = AirflowClient(f"http://127.0.0.1:{origin.server_address[1]}", token="s3cret-token")
        client.get_dag("d")
    finally:
        origin.shutdown()
        target.shutdown()

    assert Origin.seen == [("127.0.0.1", "Bearer s3cret-token")]
    assert Target.seen == [("127.0.0.2", None)]


def test_a_misspelt_conf_key_is_named_with_the_param_it_was_meant_to_be():
    problem = commands.unknown_keys({"flet_stage": "staging"}, {"fleet_stage": {}, "fleet_slug": {}})

    assert problem.startswith("unknown conf key(s) 'flet_stage' (did you mean 'fleet_stage'?)")


def test_the_module_runs_as_a_program_and_never_prints_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "include.cli.trigger", "some_dag", "--conf", "nope", "--wait"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: --conf is not valid JSON")
    assert "Traceback" not in result.stderr


def test_bad_arguments_are_one_line_and_exit_2():
    with pytest.raises(SystemExit) as exit_info:
        _run("--timeout", "soon")
    assert exit_info.value.code == trigger.EXIT_USAGE


class _Run:
    """A run as far as the approval is concerned: its state and its approval task's."""

    def __init__(self, run_state, task_state):
        self.run_state, self.task_state = run_state, task_state

    def awaiting_input(self, dag_id, run_id):
        return []

    def get_run(self, dag_id, run_id):
        return type("Run", (), {"state": self.run_state})()

    def task_instances(self, dag_id, run_id):
        return [{"task_id": "approve_promotion", "state": self.task_state}]


def _answer(client, task_id="approve_promotion", timeout=0.0):
    args = argparse.Namespace(
        dag_id="d", run_id="r", task_id=task_id, command="approve", timeout=timeout, poll=0.01, wait=False
    )
    out = io.StringIO()
    return commands.answer(client, args, out), out.getvalue()


@pytest.mark.parametrize(
    ("run_state", "task_state", "refusal"),
    [
        ("success", "skipped", "approve_promotion of run r is not waiting for an answer (skipped; the run is success)"),
        ("running", "success", "is not waiting for an answer (success; the run is running)"),
        ("failed", None, "is not waiting for an answer (None; the run is failed)"),
    ],
)
def test_answering_an_approval_that_will_never_ask_is_refused_at_once(run_state, task_state, refusal):
    with pytest.raises(AirflowApiError, match=re.escape(refusal)):
        _answer(_Run(run_state, task_state), timeout=60)


def test_a_dag_without_runs_says_so_rather_than_printing_an_empty_table():
    class NoRuns:
        def list_runs(self, dag_id, limit):
            return []

    out = io.StringIO()
    assert commands.runs(NoRuns(), "gpu_fleet_guardrails", 10, out) == commands.EXIT_OK
    assert out.getvalue() == (
        "gpu_fleet_guardrails has no runs yet (a scheduled DAG's first run comes at its start date)\n"
    )


def test_an_approval_the_run_has_not_reached_is_waited_for_then_given_up_on():
    with pytest.raises(TimeoutError, match="approve_promotion of run r did not ask for an answer within 0s"):
        _answer(_Run("running", "scheduled"))


def test_answering_a_task_the_dag_does_not_have_names_it():
    with pytest.raises(AirflowApiError, match="run r of d has no task 'approve_typo'"):
        _answer(_Run("running", None), task_id="approve_typo", timeout=60)


class _RefusingApi(_Recorder):
    """An api-server that knows one DAG with no params and refuses every run id, with the
    sentence Airflow 3.3 answers a run id that breaks its pattern."""

    def do_GET(self):
        body = json.dumps({"dag_id": "d", "is_paused": False, "params": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        detail = "The run_id provided 'a b' does not match regex pattern '^[A-Za-z0-9_.~:+-]+$'"
        body = json.dumps({"detail": detail}).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_a_refused_run_id_is_named_once_as_the_run_id_not_the_conf():
    server = _serve("127.0.0.1", _RefusingApi)
    client = AirflowClient(f"http://127.0.0.1:{server.server_address[1]}", token="t")
    args = type("Args", (), {"dag_id": "d", "run_id": "a b", "unpause": False, "wait": False})()
    err = io.StringIO()
    try:
        code = commands.trigger(client, args, {}, io.StringIO(), err)
    finally:
        server.shutdown()

    assert code == trigger.EXIT_USAGE
    assert err.getvalue() == (
        "error: DAG 'd' refused the run id 'a b': "
        "The run_id provided 'a b' does not match regex pattern '^[A-Za-z0-9_.~:+-]+$'\n"
    )
