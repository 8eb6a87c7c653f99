"""What every call the interceptor serves leaves behind: Prometheus metrics
(served by `serve --metrics-port`) and one log line."""

from __future__ import annotations

import logging
import time

import grpc
from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "modelregistry_requests",
    "Calls of ModelService and GroupService served, by method and final gRPC code",
    ("method", "code"),
)
REQUEST_SECONDS = Histogram(
    "modelregistry_request_duration_seconds",
    "Time the server spends on a call, from authentication to its answer, by method",
    ("method",),
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("modelregistry_requests_in_flight", "Calls being served now")

# Its own logger, so that the request lines can be routed or silenced alone.
request_log = logging.getLogger("modelregistry_server.requests")

# A request id is the client's (or Envoy's) text: logged, but never more than this.
MAX_REQUEST_ID_CHARACTERS = 128


class CallRecorder:
    """The metrics and the log line of one method's calls. Its metric
    children are looked up once per method and code, not per call."""

    def __init__(self, method: str) -> None:
        self.method = method
        self._seconds = REQUEST_SECONDS.labels(method)
        self._by_code: dict[grpc.StatusCode, Counter] = {}

    def started(self) -> float:
        IN_FLIGHT.inc()
        return time.perf_counter()

    def finished(
        self, began: float, code: grpc.StatusCode, user_id: str | None, request_id: str | None
    ) -> None:
        seconds = time.perf_counter() - began
        IN_FLIGHT.dec()
        counter = self._by_code.get(code)
        if counter is None:
            counter = self._by_code[code] = REQUESTS.labels(self.method, code.name)
        counter.inc()
        self._seconds.observe(seconds)
        if request_log.isEnabledFor(logging.INFO):
            milliseconds = round(seconds * 1000, 2)
            request_id = request_id[:MAX_REQUEST_ID_CHARACTERS] if request_id else None
            request_log.info(
                "%s %s %.2f ms user=%s request_id=%s",
                self.method,
                code.name,
                milliseconds,
                user_id or "-",
                request_id or "-",
                extra={
                    "method": self.method,
                    "code": code.name,
                    "duration_ms": milliseconds,
                    "user_id": user_id,
                    "request_id": request_id,
                },
            )
