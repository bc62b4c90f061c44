"""A small client for Airflow 3's public REST API (v2), standard library only.

CI systems use it through :mod:`include.cli.trigger`; ``make demo`` and the
end-to-end tests drive the real Airflow services with it. It authenticates the
Airflow 3 way (``POST /auth/token`` -> bearer token) and turns every failure into an
:class:`AirflowApiError` whose message is one readable line.
"""

from __future__ import annotations

import base64
import difflib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TERMINAL_RUN_STATES = frozenset({"success", "failed"})
FAILED_TASK_STATES = frozenset({"failed", "upstream_failed"})
#: The XCom key under which a task says what it did, in a reader's words (a list of lines:
#: ``bp_tasks.common.outcome``); the client prints them once the run is over.
OUTCOME_KEY = "outcome"
#: A human-in-the-loop task (an approval) waits in this state for an answer.
AWAITING_INPUT = "awaiting_input"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class AirflowApiError(Exception):
    """A request that did not succeed; ``status`` is the HTTP status (0: unreachable)."""

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class CredentialsMissing(AirflowApiError):
    """Neither a username and password nor a token was given: a usage error."""


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect, but never carry the bearer token to another origin: a proxy or
    a misconfigured base URL that sends the client elsewhere gets no credential."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None and _origin(newurl) != _origin(req.full_url):
            new.remove_header("Authorization")
        return new


_OPENER = urllib.request.build_opener(_SameOriginRedirects)


def check_transport(base_url: str, *, insecure_http: bool = False) -> None:
    """Credentials travel over HTTPS, except to this machine (or when told otherwise)."""
    scheme, host, _ = _origin(base_url)
    if scheme not in ("http", "https"):
        raise AirflowApiError(f"{base_url} is not an http(s) URL")
    if scheme == "http" and host not in LOOPBACK_HOSTS and not insecure_http:
        raise CredentialsMissing(
            f"{base_url} is plain http to another host: credentials would travel in clear text; "
            "use https, or pass --insecure-http if the network is trusted"
        )


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    start_date: str | None
    end_date: str | None
    conf: dict[str, Any]
    #: who started it: ``rest_api``, ``ui``, ``operator`` (a TriggerDagRunOperator), ...
    triggered_by: str | None = None
    triggering_user_name: str | None = None

    @classmethod
    def from_api(cls, payload: dict[str, Any]) -> DagRun:
        return cls(
            dag_id=payload["dag_id"],
            run_id=payload["dag_run_id"],
            state=payload["state"],
            start_date=payload.get("start_date"),
            end_date=payload.get("end_date"),
            conf=payload.get("conf") or {},
            triggered_by=payload.get("triggered_by"),
            triggering_user_name=payload.get("triggering_user_name"),
        )

    @property
    def duration_seconds(self) -> float | None:
        if not (self.start_date and self.end_date):
            return None
        start = datetime.fromisoformat(self.start_date.replace("Z", "+00:00"))
        end = datetime.fromisoformat(self.end_date.replace("Z", "+00:00"))
        return (end - start).total_seconds()


class AirflowClient:
    """Talks to one api-server. Credentials are a username/password or a ready token."""

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self._token = token
        self._timeout = timeout

    # --- transport ---------------------------------------------------------------

    def _send(self, method: str, path: str, body: Any = None, *, auth: bool = True) -> Any:
        url = f"{self.base_url}{path}"
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self._bearer()}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with _OPENER.open(request, timeout=self._timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            raise AirflowApiError(
                f"{method} {path} answered HTTP {error.code}: {_error_detail(error)}", error.code
            ) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise AirflowApiError(f"cannot reach the Airflow api-server at {self.base_url}: {reason}") from None
        return json.loads(payload) if payload else None

    def _bearer(self) -> str:
        if self._token is None:
            if not (self.username and self._password):
                raise CredentialsMissing(
                    "no credentials: set AIRFLOW_USERNAME and AIRFLOW_PASSWORD (or --password-file), "
                    "or AIRFLOW_API_TOKEN (or --token-file)"
                )
            try:
                response = self._send(
                    "POST", "/auth/token", {"username": self.username, "password": self._password}, auth=False
                )
            except AirflowApiError as error:
                if error.status in (400, 401, 403):
                    raise AirflowApiError(
                        f"the api-server at {self.base_url} refused the credentials of user {self.username!r}",
                        error.status,
                    ) from None
                raise
            self._token = response["access_token"]
        return self._token

    # --- endpoints ---------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._send("GET", "/api/v2/monitor/health", auth=False)

    def get_dag(self, dag_id: str) -> dict[str, Any]:
        try:
            return self._send("GET", f"/api/v2/dags/{_quote(dag_id)}")
        except AirflowApiError as error:
            if error.status == 404:
                close = difflib.get_close_matches(dag_id, self.dag_ids(), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise AirflowApiError(f"DAG {dag_id!r} does not exist on {self.base_url}{hint}", 404) from None
            raise

    def dag_ids(self) -> list[str]:
        """Every DAG this user may read."""
        return [dag["dag_id"] for dag in self._send("GET", "/api/v2/dags?limit=1000")["dags"]]

    def import_errors(self) -> list[dict[str, Any]]:
        return self._send("GET", "/api/v2/importErrors?limit=100")["import_errors"]

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self._send("PATCH", f"/api/v2/dags/{_quote(dag_id)}", {"is_paused": paused})

    def trigger(self, dag_id: str, conf: dict[str, Any], *, run_id: str | None = None) -> DagRun:
        body: dict[str, Any] = {"logical_date": None, "conf": conf}
        if run_id:
            body["dag_run_id"] = run_id
        try:
            return DagRun.from_api(self._send("POST", f"/api/v2/dags/{_quote(dag_id)}/dagRuns", body))
        except AirflowApiError as error:
            if error.status == 404:
                raise AirflowApiError(f"DAG {dag_id!r} does not exist on {self.base_url}", 404) from None
            if error.status == 400:  # Airflow's own sentence: the conf, or the run id
                raise AirflowApiError(str(error).split(" answered HTTP 400: ", 1)[-1], 400) from None
            raise

    def backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        max_active_runs: int = 1,
        dag_run_conf: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Create a backfill of the logical dates in [from_date, to_date] (ISO datetimes),
        oldest first, re-running dates that already ran; each run gets ``dag_run_conf``."""
        body = {
            "dag_id": dag_id,
            "from_date": from_date,
            "to_date": to_date,
            "max_active_runs": max_active_runs,
            "run_backwards": False,
            "reprocess_behavior": "completed",
            "dag_run_conf": dag_run_conf or {},
        }
        return self._send("POST", "/api/v2/backfills", body)

    def backfills(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's backfills, running and ended."""
        return self._send("GET", f"/api/v2/backfills?dag_id={_quote(dag_id)}")["backfills"]

    def dag_tasks(self, dag_id: str) -> list[dict[str, Any]]:
        """The DAG's tasks (id, downstream task ids, operator...)."""
        return self._send("GET", f"/api/v2/dags/{_quote(dag_id)}/tasks")["tasks"]

    def dag_params(self, dag_id: str) -> dict[str, dict[str, Any]]:
        """The DAG's params (name -> value, schema, description), as its trigger form has them."""
        return self._send("GET", f"/api/v2/dags/{_quote(dag_id)}/details").get("params") or {}

    def list_runs(self, dag_id: str, limit: int = 100, states: tuple[str, ...] = ()) -> list[DagRun]:
        """The newest runs first (by when they were queued); only those in ``states`` when given."""
        wanted = "".join(f"&state={_quote(state)}" for state in states)
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns?limit={int(limit)}&order_by=-run_after{wanted}"
        return [DagRun.from_api(run) for run in self._send("GET", path)["dag_runs"]]

    def get_run(self, dag_id: str, run_id: str) -> DagRun:
        return DagRun.from_api(self._send("GET", f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}"))

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        timeout: float = 1800,
        poll: float = 2.0,
        on_change: Callable[[DagRun], None] = lambda _run: None,
        on_poll: Callable[[], None] = lambda: None,
    ) -> DagRun:
        """Poll until the run is success or failed; raise ``TimeoutError`` past ``timeout``.
        ``on_poll`` runs before each poll (it may raise to stop waiting)."""
        deadline = time.monotonic() + timeout
        last_state = None
        while True:
            on_poll()
            run = self.get_run(dag_id, run_id)
            if run.state != last_state:
                on_change(run)
                last_state = run.state
            if run.state in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} of {dag_id} still {run.state} after {timeout:.0f}s")
            time.sleep(poll)

    def awaiting_input(self, dag_id: str, run_id: str) -> list[str]:
        """The run's tasks waiting for a person (an approval)."""
        return sorted(t["task_id"] for t in self.task_instances(dag_id, run_id) if t["state"] == AWAITING_INPUT)

    def run_url(self, dag_id: str, run_id: str, task_id: str | None = None) -> str:
        """The run's page in the UI (a task's page with ``task_id``)."""
        url = f"{self.base_url}/dags/{_quote(dag_id)}/runs/{_quote(run_id)}"
        return f"{url}/tasks/{_quote(task_id)}" if task_id else url

    def respond(self, dag_id: str, run_id: str, task_id: str, chosen_options: list[str]) -> dict[str, Any]:
        """Answer a human-in-the-loop task (e.g. ``["Approve"]`` on an approval)."""
        return self._send("PATCH", _hitl_path(dag_id, run_id, task_id), {"chosen_options": chosen_options})

    def hitl_detail(
        self, dag_id: str, run_id: str, task_id: str, try_number: int | None = None
    ) -> dict[str, Any] | None:
        """The human-in-the-loop record of the task's current try (or of ``try_number``):
        the question, who may answer (``assigned_users``), the answer once given
        (``responded_by_user``, ``chosen_options``) and the task instance it belongs to;
        None when that try asked nothing."""
        path = _hitl_path(dag_id, run_id, task_id) + (f"/tries/{int(try_number)}" if try_number else "")
        try:
            return self._send("GET", path)
        except AirflowApiError as error:
            if error.status == 404:
                return None
            raise

    def me(self) -> str | None:
        """This client's user id as the auth manager names it (the token's ``sub``)."""
        try:
            payload = self._bearer().split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):  # not a JWT: an auth manager of another kind
            return None
        return str(claims["sub"]) if isinstance(claims, dict) and "sub" in claims else None

    def mark_task(self, dag_id: str, run_id: str, task_id: str, state: str) -> dict[str, Any]:
        """Set a task's state by hand, as the UI's "Mark success/failed/skipped" does."""
        return self._send("PATCH", _ti_path(dag_id, run_id, task_id), {"new_state": state})

    def clear_tasks(self, dag_id: str, run_id: str, task_ids: list[str], *, downstream: bool = False) -> list[str]:
        """Clear tasks of a run (their setups and teardowns with them), as the UI's Clear
        does; the run runs them again. Returns the ids of what was cleared."""
        body = {
            "dry_run": False,
            "dag_run_id": run_id,
            "task_ids": task_ids,
            "only_failed": False,
            "include_downstream": downstream,
        }
        cleared = self._send("POST", f"/api/v2/dags/{_quote(dag_id)}/clearTaskInstances", body)
        return sorted(ti["task_id"] for ti in cleared["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """What a task pushed (its return value by default), as JSON."""
        path = f"{_ti_path(dag_id, run_id, task_id)}/xcomEntries/{_quote(key)}?deserialize=true"
        return self._send("GET", path)["value"]

    def outcomes(self, dag_id: str, run_id: str) -> dict[str, list[str]]:
        """What each task of the run said it did (:data:`OUTCOME_KEY`), by task id, in the
        order the tasks started."""
        path = f"{_ti_path(dag_id, run_id, '~')}/xcomEntries?xcom_key={OUTCOME_KEY}&limit=1000"
        task_ids = {entry["task_id"] for entry in self._send("GET", path)["xcom_entries"]}
        if not task_ids:
            return {}
        started = {t["task_id"]: t.get("start_date") or "~" for t in self.task_instances(dag_id, run_id)}
        said = {}
        for task_id in sorted(task_ids, key=lambda task_id: (started.get(task_id, "~"), task_id)):
            lines = self.xcom(dag_id, run_id, task_id, OUTCOME_KEY)
            said[task_id] = [str(line) for line in lines] if isinstance(lines, list) else [str(lines)]
        return said

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
        return self._send("GET", _ti_path(dag_id, run_id, task_id))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances?limit=1000"
        return self._send("GET", path)["task_instances"]

    def task_log_lines(self, dag_id: str, run_id: str, task_id: str, try_number: int) -> Iterator[str]:
        """The ``event`` lines of one try's log (the API serves logs as JSON events)."""
        path = f"{_ti_path(dag_id, run_id, task_id)}/logs/{try_number}?full_content=true"
        content = self._send("GET", path)["content"]
        for entry in content:
            if not isinstance(entry, dict):
                yield str(entry)
                continue
            level = entry.get("level")
            event = entry.get("event", "")
            yield f"[{level}] {event}" if level else str(event)
            # A failure's message is in error_detail (outermost exception first), not in event.
            for depth, error in enumerate(entry.get("error_detail") or []):
                prefix = "    " if depth == 0 else "    caused by "
                yield f"{prefix}{error.get('exc_type')}: {error.get('exc_value')}"


def _quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _ti_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"/api/v2/dags/{_quote(dag_id)}/dagRuns/{_quote(run_id)}/taskInstances/{_quote(task_id)}"


def _hitl_path(dag_id: str, run_id: str, task_id: str) -> str:
    return f"{_ti_path(dag_id, run_id, task_id)}/-1/hitlDetails"


def _error_detail(error: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(error.read() or b"null")
    except (ValueError, OSError):
        return error.reason or "no detail"
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):  # FastAPI validation errors
        return "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in detail)
    return str(detail or error.reason)
