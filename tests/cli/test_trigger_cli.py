"""The CI client's error paths that need no api-server (the rest run in tests/e2e)."""

import io
import subprocess
import sys

import pytest

from devstack.stack import REPO_ROOT, free_port
from include.cli import trigger


def _run(*argv):
    out, err = io.StringIO(), io.StringIO()
    code = trigger.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


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


def test_an_unreachable_api_server_is_one_line_and_exit_3():
    url = f"http://127.0.0.1:{free_port()}"

    code, _, err = _run("platform_preflight", "--url", url, "--username", "admin", "--password", "x")

    assert code == trigger.EXIT_API
    assert err.startswith(f"error: cannot reach the Airflow api-server at {url}: ")
    assert err.count("\n") == 1


def test_missing_credentials_are_named():
    code, _, err = _run("platform_preflight", "--url", f"http://127.0.0.1:{free_port()}", "--username", "")

    assert code == trigger.EXIT_API
    assert err == "error: no credentials: give a username and password, or a token\n"


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
