"""What the agent reads from the instance itself: EC2's instance metadata service, IMDSv2
only (the launch templates require tokens, hop limit 1)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

DEFAULT_URL = "http://169.254.169.254"
TOKEN_TTL_SECONDS = 21600


class InstanceMetadata:
    """IMDSv2: a session token from ``PUT /latest/api/token``, then GETs carrying it.
    The endpoint is the SDKs' ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` when set."""

    def __init__(self, url: str | None = None, timeout: float = 2.0) -> None:
        self.url = (url or os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_URL).rstrip("/")
        self.timeout = timeout
        self._token: str | None = None

    def _fetch_token(self) -> str:
        request = urllib.request.Request(
            f"{self.url}/latest/api/token",
            method="PUT",
            headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_SECONDS)},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return response.read().decode()

    def get(self, path: str) -> str:
        """``/latest/meta-data/<path>``; a token that expired is fetched again once."""
        for attempt in (1, 2):
            if self._token is None:
                self._token = self._fetch_token()
            request = urllib.request.Request(
                f"{self.url}/latest/meta-data/{path}", headers={"X-aws-ec2-metadata-token": self._token}
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return response.read().decode()
            except urllib.error.HTTPError as error:
                if error.code != 401 or attempt == 2:
                    raise
                self._token = None
        raise AssertionError("unreachable")

    def get_optional(self, path: str) -> str | None:
        """Like :meth:`get`, None where the item does not exist (404): a Spot notice
        before there is one, a lifecycle state outside an Auto Scaling group."""
        try:
            return self.get(path)
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise

    def instance_id(self) -> str:
        return self.get("instance-id")

    def region(self) -> str:
        return self.get("placement/region")
