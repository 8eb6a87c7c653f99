"""The line `serve` prints once its gRPC port accepts calls, and its one
parser. The replica supervisor, the tests and the benchmark wait for it."""

from __future__ import annotations

import re
from typing import NamedTuple

GRPC_LISTENING = "gRPC listening on"
_GRPC_LISTENING_LINE = re.compile(rf"{re.escape(GRPC_LISTENING)} (\S+):(\d+)$")


class Address(NamedTuple):
    host: str
    port: int


def listening_line(host: str, port: int) -> str:
    return f"{GRPC_LISTENING} {host}:{port}"


def parse_listening(line: str) -> Address | None:
    """The address in a "gRPC listening on HOST:PORT" line (with or without
    its line break); None for any other line."""
    match = _GRPC_LISTENING_LINE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return Address(match.group(1), int(match.group(2)))
