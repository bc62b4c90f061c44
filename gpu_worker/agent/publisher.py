"""PutMetricData from a bounded buffer: one call a minute per node in normal times, every
minute kept while CloudWatch can't be reached, and the sampler never waiting on it.

Datapoints keep the timestamp of the minute they describe (CloudWatch takes them up to
two weeks late), so a minute published after an outage lands where it belongs. A failed
call is retried with exponential backoff (from one publish interval up to
``max_backoff``); a call CloudWatch refuses as invalid (a 4xx other than throttling)
drops its batch, logged, instead of blocking every later minute behind it. When the
buffer is full the oldest datapoints go first, counted in :attr:`Publisher.dropped`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from gpu_worker.metrics import NAMESPACE

log = logging.getLogger("bp.agent.publisher")

#: PutMetricData's limits: 1000 metric datums and 1 MB per request (the AWS API reference)
MAX_DATUMS_PER_CALL = 1000
MAX_BYTES_PER_CALL = 800_000  # the size estimate below, with room under 1 MB
#: about three hours of one node's minutes (12 to 24 datums a minute)
DEFAULT_CAPACITY = 4000
RETRYABLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "ServiceUnavailable"}


def estimated_bytes(datum: dict[str, Any]) -> int:
    """A datum's share of the request, over-estimated (query protocol: every value is a
    ``MetricData.member.N.Values.member.M=`` pair)."""
    return 120 + 70 * len(datum.get("Dimensions", ())) + 45 * (2 * len(datum.get("Values", ())) + 1)


def put_batches(cloudwatch: Any, datums: list[dict[str, Any]], namespace: str = NAMESPACE) -> int:
    """Every datum, in as few PutMetricData calls as the limits allow; the number of calls.
    The one way this project writes metric datums: the agent's publisher and the local
    stack's history (what the fleets reported before the stack started) both use it."""
    calls = 0
    for batch in _batches(datums):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=batch)
        calls += 1
    return calls


def _batches(datums: Iterable[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    size = 0
    for datum in datums:
        cost = estimated_bytes(datum)
        if batch and (len(batch) >= MAX_DATUMS_PER_CALL or size + cost > MAX_BYTES_PER_CALL):
            yield batch
            batch, size = [], 0
        batch.append(datum)
        size += cost
    if batch:
        yield batch


class Publisher:
    """The buffer between the minutes the agent closes and CloudWatch."""

    def __init__(
        self,
        cloudwatch: Any,
        *,
        interval: float = 60.0,
        max_backoff: float = 300.0,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cloudwatch = cloudwatch
        self.interval = interval
        self.max_backoff = max_backoff
        self.capacity = capacity
        self.clock = clock
        self._pending: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        #: one call at a time (the publishing thread's, or the stop's last one)
        self._calling = threading.Lock()
        self._next_attempt = 0.0
        self.failures = 0
        self.dropped = 0
        self.calls = 0
        self.published = 0

    def add(self, datums: Iterable[dict[str, Any]]) -> None:
        with self._lock:
            self._pending.extend(datums)
            while len(self._pending) > self.capacity:
                self._pending.popleft()
                self.dropped += 1

    @property
    def pending(self) -> int:
        return len(self._pending)

    def due(self) -> bool:
        return bool(self._pending) and self.clock() >= self._next_attempt

    def publish(self) -> bool:
        """One PutMetricData with the oldest datums; True when it went through (False, at
        once, while another call is still out)."""
        if not self._calling.acquire(blocking=False):
            return False
        try:
            return self._publish()
        finally:
            self._calling.release()

    def _publish(self) -> bool:
        with self._lock:
            batch = next(iter(_batches(list(self._pending))), [])
        if not batch:
            return True
        try:
            self.cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=batch)
        except Exception as error:  # unreachable, throttled, refused: the buffer keeps the minutes
            if _is_invalid(error):
                log.error("CloudWatch refused %d datum(s) as invalid, dropped: %s", len(batch), error)
                self._forget(len(batch))
                self.dropped += len(batch)
                return False
            self.failures += 1
            backoff = min(self.max_backoff, self.interval * 2 ** (self.failures - 1))
            self._next_attempt = self.clock() + backoff
            log.warning(
                "PutMetricData failed (%s: %s); %d datum(s) kept, next try in %.0f s",
                type(error).__name__,
                error,
                len(self._pending),
                backoff,
            )
            return False
        self._forget(len(batch))
        self.calls += 1
        self.published += len(batch)
        if self.failures:
            log.info("CloudWatch reachable again after %d failed call(s)", self.failures)
        self.failures = 0
        self._next_attempt = 0.0
        return True

    def _forget(self, count: int) -> None:
        with self._lock:
            for _ in range(min(count, len(self._pending))):
                self._pending.popleft()


def _is_invalid(error: Exception) -> bool:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return False
    code = response.get("Error", {}).get("Code", "")
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return 400 <= status < 500 and code not in RETRYABLE_CODES
