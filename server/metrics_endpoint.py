"""`serve --metrics-port`: the process's Prometheus metrics (the calls',
the storage's, and prometheus_client's own process and Python ones) over
HTTP, from a thread beside the gRPC server."""

from __future__ import annotations

from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import disable_created_metrics, start_http_server


@dataclass(frozen=True, slots=True)
class MetricsEndpoint:
    server: WSGIServer
    thread: Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


def serve_metrics(host: str, port: int) -> MetricsEndpoint:
    """Metrics on http://host:port/metrics (port 0 picks a free one)."""
    # No *_created series: start times are noise on every scrape.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    server, thread = start_http_server(port, addr=host)
    return MetricsEndpoint(server, thread)
