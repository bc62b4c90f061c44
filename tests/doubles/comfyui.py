"""A stand-in for ComfyUI on a GPU node, which needs a GPU and models to run: its local
HTTP API as ComfyUI documents and serves it (``server.py``), over real HTTP, one server
for as many nodes as a test or the emulated fleet needs (``http://127.0.0.1:<port>/<node>``):

* ``GET /queue``: ``{"queue_running": [...], "queue_pending": [...]}``, each item
  ``[number, prompt_id, prompt, extra_data, outputs_to_execute]``;
* ``GET /history?max_items=N``: the last N finished prompts, oldest first, each
  ``{"prompt": [...], "outputs": {}, "status": {"status_str", "completed", "messages"}}``
  with ``execution_start`` and ``execution_success``/``execution_error``/
  ``execution_interrupted`` messages carrying millisecond timestamps; at most 10 000 kept;
* ``GET /system_stats``: the system and its CUDA device;
* ``POST /prompt``: queues ``{"prompt": {...}}``, answers ``prompt_id`` and ``number``.

A test drives a node by hand (:meth:`Node.submit`, :meth:`Node.start`, :meth:`Node.finish`,
:meth:`Node.restart`, ``down``), or lets :meth:`Node.drive` run the traffic a
:class:`Behaviour` describes - what the emulated fleet does. Its clock is compressed: a
prompt reports the duration its bundle gives it (``execution_start`` that many seconds
before its end) but finishes when driven, so a short test still sees minutes of work.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: ComfyUI's MAXIMUM_HISTORY_SIZE
HISTORY_SIZE = 10_000
#: what the API-format workflow of a small SDXL graph weighs (the bench's prompts)
SAMPLE_PROMPT = {
    str(i): {"class_type": kind, "inputs": {"seed": 1234 + i, "steps": 30, "cfg": 7.0, "text": "a lighthouse " * 8}}
    for i, kind in enumerate(["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage"] * 4)
}


@dataclass(frozen=True)
class Behaviour:
    """What a node's bundle makes it do: prompts a second, every ``fail_every``-th fails
    (0: none), prompts take ``seconds`` at the median (0.9x, 1x and 1.1x in turn). With
    ``hold_seconds``, one prompt at a time really runs that long (what a drain waits for)."""

    prompts_per_second: float = 1.0
    fail_every: int = 0
    seconds: float = 4.0
    hold_seconds: float = 0.0


HEALTHY = Behaviour()
#: what a degraded bundle does: the ``emulator:degraded`` tag's values
DEGRADED = {"errors": replace(HEALTHY, fail_every=3), "slow": replace(HEALTHY, seconds=12.0)}
#: a fleet or dev node nobody sends work to
QUIET = replace(HEALTHY, prompts_per_second=0.0)
JITTER = (0.9, 1.0, 1.1)


class Node:
    """One ComfyUI's queue and history."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.Lock()
        self.down = False
        self.behaviour = HEALTHY
        self.restart()

    def restart(self) -> None:
        """What a ComfyUI restart loses: the queue, the running prompt, the history."""
        with self.lock:
            self.number = 0
            self.pending: list[list[Any]] = []
            self.running: list[Any] | None = None
            self.started_ms = 0
            self.history: OrderedDict[str, dict[str, Any]] = OrderedDict()
            self.driven = 0
            self.driving_since: float | None = None

    # --- by hand -------------------------------------------------------------------------

    def submit(self, prompt: dict[str, Any] | None = None) -> str:
        with self.lock:
            prompt_id = str(uuid.uuid4())
            self.pending.append([self.number, prompt_id, prompt or SAMPLE_PROMPT, {}, []])
            self.number += 1
            return prompt_id

    def start(self) -> str | None:
        """The next waiting prompt starts running (if none runs)."""
        with self.lock:
            if self.running is None and self.pending:
                self.running = self.pending.pop(0)
                self.started_ms = _now_ms()
            return self.running[1] if self.running else None

    def finish(self, *, failed: bool = False, seconds: float | None = None, interrupted: bool = False) -> str:
        """The running prompt ends; ``seconds``: the duration it reports (else real time)."""
        with self.lock:
            item, self.running = self.running, None
            if item is None:
                raise RuntimeError(f"{self.name}: no prompt is running")
            end = _now_ms()
            start = end - round(seconds * 1000) if seconds is not None else self.started_ms
            outcome = "execution_interrupted" if interrupted else "execution_error" if failed else "execution_success"
            self.history[item[1]] = {
                "prompt": item,
                "outputs": {},
                "status": {
                    "status_str": "error" if failed or interrupted else "success",
                    "completed": not (failed or interrupted),
                    "messages": [
                        ["execution_start", {"prompt_id": item[1], "timestamp": start}],
                        ["execution_cached", {"nodes": [], "prompt_id": item[1], "timestamp": start}],
                        [outcome, {"prompt_id": item[1], "timestamp": end}],
                    ],
                },
            }
            while len(self.history) > HISTORY_SIZE:
                self.history.popitem(last=False)
            return item[1]

    def run(self, *, failed: bool = False, seconds: float = 4.0) -> str:
        """One prompt submitted, run and finished."""
        self.submit()
        self.start()
        return self.finish(failed=failed, seconds=seconds)

    # --- as the bundle says --------------------------------------------------------------

    def drive(self, now: float | None = None, *, accepting: bool = True) -> int:
        """The prompts due since the last drive under :attr:`behaviour`, run; how many.
        ``accepting`` False: the node's worker takes no new job (it drains); what runs
        goes on."""
        now = time.time() if now is None else now
        if self.behaviour.hold_seconds > 0:
            return self._hold(now, accepting)
        if self.running is not None:  # one held prompt from before: it ends now
            self.finish(seconds=self.behaviour.seconds)
        if self.driving_since is None:
            self.driving_since = now
        rate = self.behaviour.prompts_per_second if accepting else 0.0
        due = int((now - self.driving_since) * rate) - self.driven if rate > 0 else 0
        for _ in range(max(0, due)):
            self.driven += 1
            fail_every = self.behaviour.fail_every
            self.run(
                failed=bool(fail_every) and self.driven % fail_every == 0,
                seconds=self.behaviour.seconds * JITTER[self.driven % len(JITTER)],
            )
        if rate <= 0:  # a quiet spell restarts the count: no burst when work comes back
            self.driving_since, self.driven = now, 0
        return max(0, due)

    def _hold(self, now: float, accepting: bool) -> int:
        hold = self.behaviour.hold_seconds
        ended = 0
        if self.running is not None and now * 1000 - self.started_ms >= hold * 1000:
            self.finish(seconds=hold)
            ended = 1
        if self.running is None and accepting and self.behaviour.prompts_per_second > 0:
            self.submit()
            self.start()
        self.driving_since, self.driven = now, 0  # back to a prompt rate: no burst
        return ended

    # --- the API -------------------------------------------------------------------------

    def queue(self) -> dict[str, Any]:
        with self.lock:
            return {"queue_running": [self.running] if self.running else [], "queue_pending": list(self.pending)}

    def last(self, max_items: int | None) -> dict[str, Any]:
        with self.lock:
            keys = list(self.history)
            if max_items is not None:
                keys = keys[max(0, len(keys) - max_items) :]
            return {key: self.history[key] for key in keys}


def system_stats() -> dict[str, Any]:
    return {
        "system": {"os": "posix", "comfyui_version": "0.3.66", "python_version": "3.11.9", "ram_total": 33285996544},
        "devices": [
            {
                "name": "cuda:0 NVIDIA A10G : cudaMallocAsync",
                "type": "cuda",
                "index": 0,
                "vram_total": 23836753920,
                "vram_free": 22630268928,
            }
        ],
    }


class ComfyUIServer:
    """One HTTP server on loopback for many nodes: ``url(name)`` is a node's ComfyUI."""

    def __init__(self, port: int = 0) -> None:
        self.nodes: dict[str, Node] = {}
        self._lock = threading.Lock()
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        """Listen (again, on the same port after :meth:`stop`)."""
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self._port), _handler(self))
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, name="comfyui-double", daemon=True).start()

    def stop(self) -> None:
        """Nothing listens any more: connections are refused, as on a node whose ComfyUI died."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def port(self) -> int:
        return self._port

    def node(self, name: str) -> Node:
        with self._lock:
            return self.nodes.setdefault(name, Node(name))

    def remove(self, name: str) -> None:
        with self._lock:
            self.nodes.pop(name, None)

    def url(self, name: str) -> str:
        self.node(name)
        return f"http://127.0.0.1:{self.port}/{name}"


def _handler(server: ComfyUIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: the emulator serves thousands
            pass

        def _node(self) -> tuple[Node | None, str, dict[str, list[str]]]:
            parts = urlsplit(self.path)
            name, _, path = parts.path.lstrip("/").partition("/")
            node = server.nodes.get(name)
            return node, "/" + path, parse_qs(parts.query)

        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            node, path, query = self._node()
            if node is None or node.down:
                return self._answer(503, {"error": "ComfyUI is not running"})
            if path == "/queue":
                return self._answer(200, node.queue())
            if path == "/history":
                max_items = int(query["max_items"][0]) if "max_items" in query else None
                return self._answer(200, node.last(max_items))
            if path == "/system_stats":
                return self._answer(200, system_stats())
            return self._answer(404, {"error": f"no route {path}"})

        def do_POST(self) -> None:
            node, path, _ = self._node()
            if node is None or node.down:
                return self._answer(503, {"error": "ComfyUI is not running"})
            if path != "/prompt":
                return self._answer(404, {"error": f"no route {path}"})
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            prompt_id = node.submit(body.get("prompt"))
            return self._answer(200, {"prompt_id": prompt_id, "number": node.number - 1, "node_errors": {}})

    return Handler


def _now_ms() -> int:
    return int(time.time() * 1000)
