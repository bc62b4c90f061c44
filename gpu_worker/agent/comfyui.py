"""What the agent reads from ComfyUI, through ComfyUI's own local HTTP API only: the
agent watches every prompt the node runs, whoever submitted it, and never changes one.

* ``GET /queue``: ``queue_running`` and ``queue_pending`` (each a list of prompts);
* ``GET /history?max_items=N``: the last N prompts ComfyUI finished, oldest first, each
  with ``status.status_str`` (``success``/``error``) and ``status.messages``
  (``execution_start``, ``execution_success``, ``execution_error``,
  ``execution_interrupted``, each with a millisecond ``timestamp``).

ComfyUI keeps its history in memory (a restart empties it) and up to 10 000 prompts: the
tracker asks for a few more than it expects and doubles the window while every prompt in
it is new, so a burst is never missed and a quiet node costs one small request.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8188"
#: the largest history window asked for (ComfyUI's own MAXIMUM_HISTORY_SIZE is 10 000)
MAX_WINDOW = 4096
#: prompt ids remembered as counted: more than ComfyUI keeps, so none is counted twice
REMEMBERED = 2 * 10_000


class ComfyUIUnavailable(RuntimeError):
    """ComfyUI did not answer (stopped, restarting, or not up yet)."""


@dataclass(frozen=True)
class FinishedPrompt:
    prompt_id: str
    failed: bool
    #: execution start to end, from ComfyUI's own timestamps; None when it logged none
    seconds: float | None
    #: when it ended (epoch seconds); None when ComfyUI logged no timestamp
    finished_at: float | None


class ComfyUI:
    """A client of one ComfyUI's HTTP API (``http://127.0.0.1:8188`` on a node)."""

    def __init__(self, url: str = DEFAULT_URL, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str) -> Any:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=self.timeout) as response:
                return json.load(response)
        except (OSError, ValueError) as error:  # URLError, refused, reset, timeout, bad JSON
            raise ComfyUIUnavailable(f"{self.url}{path}: {error}") from None

    def queued(self) -> int:
        """Prompts running or waiting."""
        queue = self._get("/queue")
        return len(queue.get("queue_running") or ()) + len(queue.get("queue_pending") or ())

    def history(self, max_items: int) -> dict[str, Any]:
        return self._get(f"/history?max_items={int(max_items)}")

    def system_stats(self) -> dict[str, Any]:
        return self._get("/system_stats")


def finished_prompt(prompt_id: str, entry: dict[str, Any]) -> FinishedPrompt | None:
    """A history entry as a finished prompt; None for one a person interrupted (it is
    neither a job done nor an error)."""
    status = entry.get("status") or {}
    events = {}
    for message in status.get("messages") or ():
        if isinstance(message, list | tuple) and len(message) == 2 and isinstance(message[1], dict):
            events[message[0]] = message[1].get("timestamp")
    if "execution_interrupted" in events:
        return None
    failed = status.get("status_str") == "error" or "execution_error" in events
    start = events.get("execution_start")
    end = events.get("execution_error" if failed else "execution_success")
    seconds = (end - start) / 1000 if isinstance(start, int | float) and isinstance(end, int | float) else None
    finished_at = end / 1000 if isinstance(end, int | float) else None
    return FinishedPrompt(prompt_id, failed, None if seconds is None else max(seconds, 0.0), finished_at)


class PromptTracker:
    """The prompts ComfyUI finished since the agent started, each once.

    A prompt counts when it ended after ``since`` (the agent's start: what ran before is
    not the agent's to report again after a restart of its own); ComfyUI's restarts are
    survived because prompt ids are unique and remembered.
    """

    def __init__(self, comfyui: ComfyUI, since: float, window: int = 16) -> None:
        self.comfyui = comfyui
        self.since = since
        self.window = window
        self._counted: OrderedDict[str, None] = OrderedDict()

    def new(self) -> list[FinishedPrompt]:
        """Prompts finished since the last call (raises :class:`ComfyUIUnavailable`)."""
        window = self.window
        while True:
            history = self.comfyui.history(window)
            fresh = [key for key in history if key not in self._counted]
            if len(fresh) < len(history) or len(history) < window or window >= MAX_WINDOW:
                break
            window *= 2  # every prompt in the window is new: some may lie before it
        # ask for about twice what the last look found next time, never fewer than 16
        self.window = min(MAX_WINDOW, max(16, 2 * len(fresh)))
        found = []
        for key in fresh:
            self._remember(key)
            prompt = finished_prompt(key, history[key])
            if prompt is not None and (prompt.finished_at is None or prompt.finished_at >= self.since):
                found.append(prompt)
        return found

    def _remember(self, key: str) -> None:
        self._counted[key] = None
        while len(self._counted) > REMEMBERED:
            self._counted.popitem(last=False)
