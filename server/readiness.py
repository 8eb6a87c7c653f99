"""The lines `serve` prints once it accepts calls, and the one parser of the
gRPC one. The replica supervisor, the tests and the benchmark wait for them."""

from __future__ import annotations

import re
from typing import NamedTuple

GRPC_LISTENING = "gRPC listening on"
HTTP_LISTENING = "HTTP/JSON (Envoy) listening on"
METRICS_LISTENING = "Prometheus metrics on"
_GRPC_LISTENING_LINE = re.compile(rf"{re.escape(GRPC_LISTENING)} (\S+):(\d+)$")


class Address(NamedTuple):
    host: str
    port: int


def listening_line(host: str, port: int) -> str:
    return f"{GRPC_LISTENING} {host}:{port}"


def http_listening_line(host: str, port: int) -> str:
    return f"{HTTP_LISTENING} http://{host}:{port}"


def metrics_listening_line(host: str, port: int) -> str:
    return f"{METRICS_LISTENING} http://{host}:{port}/metrics"


def parse_listening(line: str) -> Address | None:
    """The address in a "gRPC listening on HOST:PORT" line (with or without
    its line break); None for any other line."""
    match = _GRPC_LISTENING_LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return Address(match.group(1), int(match.group(2)))
