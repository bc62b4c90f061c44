"""One-line param refusals from the api-server, for the UI's trigger dialog and any client.

Airflow answers a trigger whose conf breaks a param's JSON schema with HTTP 400 and
jsonschema's full report (the schema as a Python dict, the instance, a dozen lines), which
the trigger dialog prints as it is. This middleware rewrites only that answer's ``detail``
to :func:`include.form_params.one_line_refusal`; every other request passes untouched and
unbuffered.
"""

from __future__ import annotations

import json
import re
from typing import Any

from include.form_params import one_line_refusal

#: The trigger endpoint (``POST /api/v2/dags/{dag_id}/dagRuns``), behind any base path.
TRIGGER_PATH = re.compile(r"/api/v2/dags/[^/]+/dagRuns/?$")
PARAM_REFUSAL = "Invalid input for param "


class OneLineParamRefusals:
    """Pure ASGI middleware (no response buffering outside a refused trigger)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not TRIGGER_PATH.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        held: list[dict[str, Any]] = []

        async def rewrite_refusals(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                held.append(message)
                return
            if held and message["type"] == "http.response.body":
                held.append(message)
                if message.get("more_body"):
                    return
                for rewritten in _rewritten(held):
                    await send(rewritten)
                held.clear()
                return
            await send(message)

        await self.app(scope, receive, rewrite_refusals)


def _rewritten(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    start, body = messages[0], b"".join(m.get("body", b"") for m in messages[1:])
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str) and PARAM_REFUSAL in detail:
        payload["detail"] = PARAM_REFUSAL + one_line_refusal(detail).removeprefix("param ")
        body = json.dumps(payload).encode()
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    return [{**start, "headers": headers}, {"type": "http.response.body", "body": body, "more_body": False}]
