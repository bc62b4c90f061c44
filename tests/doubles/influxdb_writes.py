"""A stand-in for InfluxDB 2's write API (``POST /api/v2/write?org=&bucket=&precision=``),
which can't run here: it checks the token and keeps each line of line protocol per bucket,
a later line with the same series and timestamp replacing the earlier one, as InfluxDB
stores points. ``failing`` makes it answer 503, as an InfluxDB that is down for upgrade."""

from __future__ import annotations

import gzip
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

#: series (measurement and tags) and timestamp of a line: what makes two points the same one
_KEY = re.compile(r"^(?P<series>(?:[^ \\]|\\.)+) .* (?P<time>\d+)$")


class InfluxWrites:
    def __init__(self, token: str) -> None:
        self.token = token
        self.failing = False
        self.buckets: dict[str, dict[tuple[str, str], str]] = {}
        influx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if influx.failing:
                    self.send_response(503)
                elif url.path != "/api/v2/write" or self.headers.get("Authorization") != f"Token {influx.token}":
                    self.send_response(401)
                else:
                    bucket = parse_qs(url.query)["bucket"][0]
                    for line in body.decode().splitlines():
                        key = _KEY.match(line)
                        influx.buckets.setdefault(bucket, {})[(key["series"], key["time"])] = line
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def lines(self, bucket: str) -> list[str]:
        return sorted(self.buckets.get(bucket, {}).values())

    def stop(self) -> None:
        self.server.shutdown()
