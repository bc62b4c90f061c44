"""The stack's processes: each in its own session (stopped by process group, since a
plain SIGTERM to one Airflow process leaves its workers behind), its output in a log
file, and watched - a component that dies is restarted (``make up``) or fails the run
at once with its log (demo, tests), never a silent hang."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A port nothing on loopback listens on now (the OS's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_private(path: Path, text: str) -> None:
    """Write ``path`` readable by its owner only (0600), whatever mode it had: it holds
    passwords."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


class StackError(Exception):
    """The stack could not start or a component died; the message says which and shows its log."""


@dataclass
class Component:
    name: str
    command: list[str]
    env: dict[str, str]
    cwd: Path
    log_path: Path
    process: subprocess.Popen | None = None
    restarts: int = 0
    #: every process group this component led (a restart leads a new one)
    groups: list[int] = field(default_factory=list)

    def start(self) -> None:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.groups.append(self.process.pid)

    @property
    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return tail(text, lines)


@dataclass
class Supervisor:
    """Watches the components every second; ``restart`` up to ``max_restarts`` times each."""

    components: dict[str, Component]
    restart: bool
    max_restarts: int = 3
    on_event: Callable[[str], None] = lambda message: None
    failure: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="stack-supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def check(self) -> None:
        """Raise :class:`StackError` if a component died and was not brought back."""
        self._look()
        if self.failure:
            raise StackError(self.failure)

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            self._look()

    def _look(self) -> None:
        for component in self.components.values():
            code = component.exit_code
            if code is None or self.failure:
                continue
            what = f"{component.name} exited with code {code}"
            if self.restart and component.restarts < self.max_restarts:
                component.restarts += 1
                self.on_event(f"{what}; restarting it ({component.restarts}/{self.max_restarts})")
                # what the dead one started (a Celery worker's child) would go on beside the new one
                stop_process_groups([component.process.pid], grace=5)
                component.start()
                continue
            self.failure = f"{what}; last lines of {component.log_path}:\n{component.log_tail()}"
            self.on_event(self.failure)


def alive(pid: int) -> bool:
    """Whether anything of the process group led by ``pid`` still runs."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap the leader if it is our exited child
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def stop_process_groups(pids: list[int], grace: float) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds, then SIGKILL what is left."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.2)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
