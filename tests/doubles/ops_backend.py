"""A stand-in for the platform backend's ops endpoint (``POST /api/ops/comfyui-assets/
sync-logs``), which can't run here: it checks each record's signature with the shared
asset-ops secret, as the backend would, and keeps what it accepted."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class OpsBackend:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.accepted: list[dict] = []
        self.refused: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers.get("X-BP-Timestamp", "")
                expected = hmac.new(backend.secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
                if self.path != "/api/ops/comfyui-assets/sync-logs":
                    backend.refused.append(f"path {self.path}")
                    self.send_response(404)
                elif not hmac.compare_digest(self.headers.get("X-BP-Signature", ""), f"sha256={expected.hexdigest()}"):
                    backend.refused.append("bad signature")
                    self.send_response(401)
                else:
                    backend.accepted.append(json.loads(body))
                    self.send_response(201)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
