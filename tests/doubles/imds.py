"""A stand-in for EC2's instance metadata service (IMDSv2 only, as our launch templates
require), which exists only on an instance: one HTTP server on loopback answering for
many instances at ``http://127.0.0.1:<port>/<instance id>``.

AWS (the EC2 user guide, "Use IMDSv2"): a session starts with ``PUT /latest/api/token``
and the header ``X-aws-ec2-metadata-token-ttl-seconds``; every request then carries the
token in ``X-aws-ec2-metadata-token``; with IMDSv2 required, a request without a valid
token is answered ``401 Unauthorized``.

Items that change while an instance runs are read live, from whoever knows them
(:class:`MetadataServer`'s ``live``): ``autoscaling/target-lifecycle-state`` from the
emulator's Auto Scaling groups, ``spot/instance-action`` from a planted Spot notice - "The
instance-action item ... specifies the action and the approximate time, in UTC, when the
action will occur", ``{"action": "terminate", "time": "2026-12-06T08:22:00Z"}``, and is
absent (404) until EC2 plans one.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REGION = "us-east-1"


#: an item read when asked: the instance id -> its value (None: 404, as IMDS answers an
#: item that does not exist)
LiveItem = Callable[[str], "str | None"]


class MetadataServer:
    """``live``: items whose value changes while the instance runs (its target lifecycle
    state, a Spot instance-action notice), read from whoever knows them at each request."""

    def __init__(self, live: dict[str, LiveItem] | None = None) -> None:
        self.instances: dict[str, dict[str, str]] = {}
        self.live = dict(live or {})
        self.tokens: set[str] = set()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, name="imds-double", daemon=True).start()

    def add(self, instance_id: str, region: str = REGION) -> str:
        """The instance's metadata; its IMDS endpoint."""
        self.instances[instance_id] = {"instance-id": instance_id, "placement/region": region}
        return self.url(instance_id)

    def url(self, instance_id: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/{instance_id}"

    def expire_tokens(self) -> None:
        self.tokens.clear()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _handler(server: MetadataServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, text: str = "") -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _split(self) -> tuple[dict[str, str] | None, str]:
            instance, _, path = self.path.lstrip("/").partition("/")
            return server.instances.get(instance), "/" + path

        def do_PUT(self) -> None:
            metadata, path = self._split()
            if metadata is None or path != "/latest/api/token":
                return self._send(404)
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self._send(400)
            token = secrets.token_urlsafe(24)
            server.tokens.add(token)
            return self._send(200, token)

        def do_GET(self) -> None:
            metadata, path = self._split()
            if metadata is None:
                return self._send(404)
            if self.headers.get("X-aws-ec2-metadata-token") not in server.tokens:
                return self._send(401)
            item = path.removeprefix("/latest/meta-data/")
            value = server.live[item](metadata["instance-id"]) if item in server.live else metadata.get(item)
            return self._send(200, value) if value is not None else self._send(404)

    return Handler
