"""Start and stop the local stack: the moto server and the real Airflow services.

Measured facts this follows (shared/notes/airflow-local.md): components run ``airflow``
from PATH, so the venv's ``bin`` goes first; the api-server listens on a free port and
``core.execution_api_server_url`` follows it; the log servers get free ports too;
parallelism stays small; every component runs in its own session and is stopped by
process group (a plain SIGTERM to one process leaves workers behind); readiness is
``GET /api/v2/monitor/health``, never a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.cli.airflow_client import AirflowApiError, AirflowClient

REPO_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")
ADMIN_USER = "admin"
REGION = "us-east-1"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
STATE_FILE = "stack.json"
#: moto accepts any credentials; these are the ones its documentation uses.
EMULATOR_KEY_ID = EMULATOR_SECRET = "testing"  # noqa: S105


class StackError(Exception):
    """The stack could not start; the message says which component and shows its log tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aws_connection_uri(endpoint_url: str) -> str:
    """The ``aws_default`` connection as Airflow's JSON form, pointing at the emulator."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": EMULATOR_KEY_ID,
            "password": EMULATOR_SECRET,
            "extra": {"region_name": REGION, "endpoint_url": endpoint_url},
        }
    )


def emulator_client_factory(endpoint_url: str) -> Callable[[str], Any]:
    """boto3 clients that talk to the emulator, for seeding and for tests."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=EMULATOR_KEY_ID, aws_secret_access_key=EMULATOR_SECRET, region_name=REGION
    )
    return lambda service: session.client(service, endpoint_url=endpoint_url)


@dataclass
class Ports:
    api: int
    moto: int
    worker_logs: int
    trigger_logs: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())


class LocalStack:
    """One stack under ``home`` (its AIRFLOW_HOME, logs and state file)."""

    def __init__(
        self,
        home: Path,
        *,
        ports: Ports | None = None,
        extra_env: dict[str, str] | None = None,
        parallelism: int = 4,
    ) -> None:
        self.home = home.resolve()
        self.ports = ports or Ports.pick()
        self.extra_env = dict(extra_env or {})
        self.parallelism = parallelism
        self.processes: dict[str, subprocess.Popen] = {}
        #: set by the seed step: where the stack's logs and exports land
        self.logs_bucket = ""

    # --- addresses and settings ---------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.api}"

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.moto}"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"

    @property
    def logs_dir(self) -> Path:
        return self.home / "services"

    def env(self) -> dict[str, str]:
        venv_bin = str(Path(sys.executable).parent)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_"))
        }
        env.update(
            {
                "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.ports.api),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.worker_logs),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.trigger_logs),
                "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
                "AIRFLOW_CONN_AWS_DEFAULT": aws_connection_uri(self.moto_url),
                # Packer can't launch an instance in the emulator: its test double registers
                # the image instead; the operator runs it exactly as it runs packer
                "AIRFLOW__BP__PACKER_BINARY": str(REPO_ROOT / "tests" / "doubles" / "packer"),
                "PACKER_DOUBLE_PYTHON": sys.executable,
                "AWS_EC2_METADATA_DISABLED": "true",
            }
        )
        env.update(self.extra_env)
        return env

    def admin_password(self) -> str:
        generated = self.airflow_home / "simple_auth_manager_passwords.json.generated"
        return json.loads(generated.read_text())[ADMIN_USER]

    def client(self, timeout: float = 30.0) -> AirflowClient:
        return AirflowClient(self.api_url, username=ADMIN_USER, password=self.admin_password(), timeout=timeout)

    def aws_client(self) -> Callable[[str], Any]:
        return emulator_client_factory(self.moto_url)

    # --- lifecycle ---------------------------------------------------------------

    def start(self, *, seed: Callable[[Callable[[str], Any]], Any] | None = None, timeout: float = 240) -> Any:
        """Start the emulator, seed it, migrate the DB, start Airflow; return the seed's result."""
        if self.home.exists():
            shutil.rmtree(self.home)
        self.logs_dir.mkdir(parents=True)
        self.airflow_home.mkdir(parents=True)
        try:
            self._spawn(
                "moto",
                [
                    *(sys.executable, "-m", "devstack.moto_server", "--port", str(self.ports.moto)),
                    *("--double", "tests.doubles.gpu_node"),  # the GPU nodes' bundle installer
                ],
            )
            self._wait_for_port("moto", self.ports.moto, timeout=60)
            seeded = seed(self.aws_client()) if seed else None
            migrate = subprocess.run(
                [AIRFLOW_BIN, "db", "migrate"], env=self.env(), cwd=self.home, capture_output=True, text=True
            )
            if migrate.returncode != 0:
                raise StackError(f"airflow db migrate failed:\n{_tail(migrate.stdout + migrate.stderr)}")
            for component in AIRFLOW_COMPONENTS:
                self._spawn(component, [AIRFLOW_BIN, component])
            self._write_state()
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return seeded

    def stop(self, grace: float = 20) -> None:
        _stop_process_groups({name: p.pid for name, p in self.processes.items()}, grace)
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=1)
        self.processes.clear()
        (self.home / STATE_FILE).unlink(missing_ok=True)

    @classmethod
    def stop_from_state(cls, home: Path, grace: float = 20) -> bool:
        """Stop a stack another process left running (``make down``); False if none."""
        state_file = home.resolve() / STATE_FILE
        if not state_file.exists():
            return False
        state = json.loads(state_file.read_text())
        _stop_process_groups(state["pids"], grace)
        state_file.unlink()
        return True

    @classmethod
    def running_state(cls, home: Path) -> dict[str, Any] | None:
        state_file = home.resolve() / STATE_FILE
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        return state if any(_alive(pid) for pid in state["pids"].values()) else None

    # --- helpers -----------------------------------------------------------------

    def _spawn(self, name: str, command: list[str]) -> None:
        log_file = open(self.logs_dir / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps it
        self.processes[name] = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=self.env(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log_path = self.logs_dir / f"{name}.log"
                raise StackError(
                    f"{name} exited with code {process.returncode}; last lines of {log_path}:\n"
                    + _tail(log_path.read_text(errors="replace"))
                )

    def _wait_for_port(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise StackError(f"{name} did not listen on 127.0.0.1:{port} within {timeout:.0f}s")

    def _wait_healthy(self, timeout: float) -> None:
        client = AirflowClient(self.api_url, timeout=5)
        deadline = time.monotonic() + timeout
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                health = client.health()
            except AirflowApiError:
                health = {}
            statuses = {
                part: (health.get(part) or {}).get("status")
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            }
            if all(status == "healthy" for status in statuses.values()):
                return
            time.sleep(1)
        raise StackError(f"Airflow was not healthy within {timeout:.0f}s: {health or 'api-server not answering'}")

    def _write_state(self) -> None:
        state = {
            "pids": {name: process.pid for name, process in self.processes.items()},
            "api_url": self.api_url,
            "moto_url": self.moto_url,
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))


def _alive(pid: int) -> bool:
    """Whether anything of the process group led by ``pid`` still runs."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap the leader if it is our exited child
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_process_groups(pids: dict[str, int], grace: float) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
