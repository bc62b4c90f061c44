"""Start and stop the local stack: the moto server and the real Airflow services, on
PostgreSQL, with the LocalExecutor (one machine) or the CeleryExecutor (two workers with
homes and temporary folders of their own, on Redis, as two hosts would have).

Measured facts this follows (shared/notes/airflow-local.md): ``airflow`` runs from PATH
(the venv's ``bin`` first); the api-server and each log server listen on free ports (the
execution API URL follows); parallelism stays small; each component runs in a session of
its own, stopped by process group; readiness is ``GET /api/v2/monitor/health``, never a
sleep; two workers on one host report distinct hostnames (a ``hostname_callable`` each).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack import services, users
from devstack.processes import Component, StackError, Supervisor, alive, free_port, stop_process_groups, tail
from include.cli.airflow_client import AirflowApiError, AirflowClient

REPO_ROOT = Path(__file__).resolve().parents[1]
AIRFLOW_BIN = str(Path(sys.executable).parent / "airflow")
ADMIN_USER = users.ADMIN
REGION = "us-east-1"
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Airflow's log servers listen on every interface (airflow/utils/serve_logs); task logs
#: go to S3 here (remote logging), so none is started: nothing listens beyond loopback.
SERVES_LOGS = {"scheduler": ("--skip-serve-logs",), "triggerer": ("--skip-serve-logs",)}
EXECUTORS = ("local", "celery")
WORKERS = ("w1", "w2")
STATE_FILE = "stack.json"
#: moto accepts any credentials; these are the ones its documentation uses.
EMULATOR_KEY_ID = EMULATOR_SECRET = "testing"  # noqa: S105

__all__ = ["LocalStack", "StackError", "executor_from_environment", "free_port"]


def executor_from_environment() -> str:
    """``BP_EXECUTOR`` (``local``, the default, or ``celery``)."""
    executor = os.environ.get("BP_EXECUTOR", "local").strip().lower() or "local"
    if executor not in EXECUTORS:
        raise StackError(f"BP_EXECUTOR={executor!r} is not one of {', '.join(EXECUTORS)}")
    return executor


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
    trigger_logs: int
    worker_logs: dict[str, int]

    @classmethod
    def pick(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), {name: free_port() for name in ("scheduler", *WORKERS)})


class LocalStack:
    """One stack under ``home`` (its AIRFLOW_HOME, logs, storage and state file)."""

    def __init__(
        self,
        home: Path,
        *,
        executor: str = "local",
        ports: Ports | None = None,
        extra_env: dict[str, str] | None = None,
        parallelism: int = 4,
        restart: bool = False,
        on_event: Callable[[str], None] = lambda message: None,
    ) -> None:
        if executor not in EXECUTORS:
            raise StackError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
        self.home = home.resolve()
        self.executor = executor
        self.ports = ports or Ports.pick()
        self.extra_env = dict(extra_env or {})
        self.parallelism = parallelism
        self.components: dict[str, Component] = {}
        self.supervisor = Supervisor(self.components, restart=restart, on_event=on_event)
        self.postgres: services.Postgres | None = None
        self.database_url = ""
        self.redis_url = ""
        #: set by the seed step: the emulated account's logs bucket (storage and task logs)
        self.logs_bucket = ""
        #: the users of :mod:`devstack.users`, with the ids FAB gave them once created
        self.accounts = users.new_accounts()

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

    @property
    def node_agent_stats(self) -> Path:
        """The emulated nodes' agents so far (tests.doubles.fleet_nodes writes it as JSON)."""
        return self.home / "node-agents.json"

    def node_agents(self) -> dict[str, int]:
        return json.loads(self.node_agent_stats.read_text()) if self.node_agent_stats.is_file() else {}

    @property
    def celery(self) -> bool:
        return self.executor == "celery"

    @property
    def queue(self) -> str:
        """The Celery queue of this stack's tasks: stacks sharing one Redis keep apart."""
        return services.database_name(self.home).replace("bp_stack_", "bp-")

    @property
    def storage_base(self) -> str:
        """Where tasks hand each other files: a folder of the one machine, or (on Celery,
        workers with disks of their own) the emulator's logs bucket, as a deployment."""
        if self.celery:
            return f"s3://aws_default@{self.logs_bucket}/airflow/storage"
        return f"file://{self.home / 'storage'}"

    @property
    def remote_log_folder(self) -> str:
        return f"s3://{self.logs_bucket}/airflow/logs"

    def env(self) -> dict[str, str]:
        """What every component gets; workers add their own name, home and tmp."""
        venv_bin = str(Path(sys.executable).parent)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(
                ("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_", "BP_", "PYTHONDONTWRITEBYTECODE")
            )
        }
        env.update(
            {
                "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "plugins")]),
                # every task process and every parse imports the project: compiled once, not each time
                "PYTHONPYCACHEPREFIX": str(self.home / "pycache"),
                "AIRFLOW_HOME": str(self.airflow_home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
                # glob syntax logs a pathspec deprecation warning into every task log; the task
                # SDK's scan of Airflow's example plugins uses it anyway (the image filters it too)
                "AIRFLOW__CORE__DAG_IGNORE_FILE_SYNTAX": "regexp",
                "PYTHONWARNINGS": "ignore:GitWildMatchPattern:DeprecationWarning",
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor" if self.celery else "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
                **users.auth_env(self.accounts, self.api_url),
                # a failed try is retried after seconds here; deployments keep Airflow's 5 minutes
                "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "5",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.ports.api),
                "AIRFLOW__API__BASE_URL": self.api_url,
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.worker_logs["scheduler"]),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(self.ports.trigger_logs),
                "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
                # the DAG files are parsed at start and again as soon as one is edited (the processor
                # looks at their mtimes): parsing all of them every 30 s cost four stacks half of two
                # CPUs under make test, and every 600 s still cost a stack 10 CPU-s each time
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "3600",
                # an idle scheduler loops every 0.5 s, not 1: a task waits 2-3 loops (bench/scheduler_hops.py)
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                # a worker killed mid-task is noticed in a minute, not five
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "45",
                "AIRFLOW_CONN_AWS_DEFAULT": aws_connection_uri(self.moto_url),
                # Packer can't launch an instance in the emulator: its test double registers
                # the image instead; the operator runs it exactly as it runs packer
                "AIRFLOW__BP__PACKER_BINARY": str(REPO_ROOT / "tests" / "doubles" / "packer"),
                "PACKER_DOUBLE_PYTHON": sys.executable,
                "AIRFLOW__BP__HONOUR_MUTE_TIMINGS": "False",  # no maintenance window: alerts never hang on the hour
                "AWS_EC2_METADATA_DISABLED": "true",
                # the guardrails' 15-minute schedule starts tomorrow: its runs here are the
                # ones the demo and the tests trigger, never one racing them
                "BP_GUARDRAILS_START_DATE": (datetime.now(UTC).date() + timedelta(days=1)).isoformat(),
            }
        )
        if self.logs_bucket:
            env.update(
                {
                    "AIRFLOW__BP__OBJECT_STORAGE_BASE": self.storage_base,
                    "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
                    "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": self.remote_log_folder,
                    "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": "aws_default",
                }
            )
        if self.celery:
            env.update(
                {
                    "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
                    "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + self.database_url,
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
                    "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                }
            )
        env.update(self.extra_env)
        return env

    def worker_env(self, name: str) -> dict[str, str]:
        """A Celery worker as a host of its own: its home, its temporary folder, its name."""
        home = self.home / "workers" / name
        (home / "tmp").mkdir(parents=True, exist_ok=True)
        return {
            **self.env(),
            "AIRFLOW_HOME": str(home),
            "TMPDIR": str(home / "tmp"),
            "BP_WORKER_NAME": name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "devstack.hostnames.worker_name",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(self.ports.worker_logs[name]),
        }

    def password(self, user: str = ADMIN_USER) -> str:
        return self.accounts[user].password

    def client(self, timeout: float = 90.0, user: str = ADMIN_USER) -> AirflowClient:
        """A REST client of the stack's api-server. Its patience is for two CPUs running
        four stacks and the unit tests at once (``make test``): the api-server then went
        unanswered for over 30 s now and then."""
        return AirflowClient(self.api_url, username=user, password=self.password(user), timeout=timeout)

    def aws_client(self) -> Callable[[str], Any]:
        return emulator_client_factory(self.moto_url)

    def describe(self) -> str:
        """One line for the demo and ``make up``: the engine it runs on."""
        database = "embedded PostgreSQL" if self.postgres and self.postgres.embedded else "PostgreSQL"
        if self.celery:
            return f"CeleryExecutor with {len(WORKERS)} workers ({', '.join(WORKERS)}) on {database} and Redis"
        return f"LocalExecutor on {database}"

    # --- lifecycle ---------------------------------------------------------------

    def start(self, *, seed: Callable[[Callable[[str], Any]], Any] | None = None, timeout: float = 240) -> Any:
        """Check the servers, start the emulator and seed it, migrate the DB, start Airflow;
        return the seed's result. Nothing is left running if any step fails."""
        if self.home.exists():
            shutil.rmtree(self.home)
        self.logs_dir.mkdir(parents=True)
        self.airflow_home.mkdir(parents=True)
        try:
            # servers first: a missing one is one line, before anything was started
            self.redis_url = services.redis_url() if self.celery else ""
            self.postgres = services.postgres(self.home, allow_embedded=not self.celery)
            self.database_url = self.postgres.recreate(services.database_name(self.home))
            self._spawn(
                "moto",
                [
                    *(sys.executable, "-m", "devstack.moto_server", "--port", str(self.ports.moto)),
                    *("--double", "tests.doubles.gpu_node"),  # the GPU nodes' bundle installer
                    *("--double", "tests.doubles.fleet_nodes"),  # the nodes' ComfyUI and their real agents
                ],
                {**self.env(), "BP_NODE_AGENT_STATS": str(self.node_agent_stats)},
            )
            self._wait_for_port("moto", self.ports.moto, timeout=60)
            seeded = seed(self.aws_client()) if seed else None
            migrate = subprocess.run(
                [AIRFLOW_BIN, "db", "migrate"], env=self.env(), cwd=self.home, capture_output=True, text=True
            )
            if migrate.returncode != 0:
                raise StackError(f"airflow db migrate failed:\n{tail(migrate.stdout + migrate.stderr)}")
            try:
                self.accounts = users.create(self.accounts, self.env(), self.home)
            except RuntimeError as error:
                raise StackError(str(error)) from None
            for component in AIRFLOW_COMPONENTS:
                self._spawn(component, [AIRFLOW_BIN, component, *SERVES_LOGS.get(component, ())])
            if self.celery:
                for name in WORKERS:
                    command = [AIRFLOW_BIN, "celery", "worker", "--queues", self.queue, "--skip-serve-logs"]
                    self._spawn(f"worker-{name}", [*command, "--celery-hostname", f"{name}@%h"], self.worker_env(name))
            self._write_state()
            self._wait_healthy(timeout)
            self.supervisor.start()
        except BaseException:
            self.stop()
            raise
        return seeded

    def check(self) -> None:
        """Raise :class:`StackError` with its log if a component died (and stayed dead)."""
        self.supervisor.check()

    def stop(self, grace: float = 20) -> None:
        self.supervisor.stop()
        stop_process_groups([group for c in self.components.values() for group in c.groups], grace)
        for component in self.components.values():
            if component.process is not None:
                component.process.wait(timeout=5)
        self.components.clear()
        if self.postgres is not None:
            self.postgres.drop_created()
        (self.home / STATE_FILE).unlink(missing_ok=True)

    @classmethod
    def running_state(cls, home: Path) -> dict[str, Any] | None:
        state_file = home.resolve() / STATE_FILE
        if not state_file.exists():
            return None
        state = json.loads(state_file.read_text())
        return state if any(alive(pid) for pid in state["pids"].values()) else None

    # --- helpers -----------------------------------------------------------------

    def spawn_double(self, name: str, module: str, args: list[str], env: dict[str, str]) -> int:
        """Start a stand-in for an external system (a module of ``tests/doubles``) on a free
        port, stopped with the stack; return the port once it listens."""
        port = free_port()
        self._spawn(name, [sys.executable, "-m", module, "--port", str(port), *args], {**self.env(), **env})
        self._wait_for_port(name, port, timeout=60)
        return port

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        component = Component(name, command, env or self.env(), REPO_ROOT, self.logs_dir / f"{name}.log")
        component.start()
        self.components[name] = component

    def _wait_for_port(self, name: str, port: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.supervisor.check()
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
            self.supervisor.check()
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
            "pids": {name: c.process.pid for name, c in self.components.items() if c.process},
            "api_url": self.api_url,
            "moto_url": self.moto_url,
            "executor": self.executor,
        }
        (self.home / STATE_FILE).write_text(json.dumps(state, indent=2))
