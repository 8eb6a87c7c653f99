"""The "gRPC listening on HOST:PORT" line: written and read in one place."""

from __future__ import annotations

import pytest

from modelregistry_server.readiness import Address, listening_line, parse_listening


@pytest.mark.parametrize(
    ("line", "address"),
    [
        ("gRPC listening on 127.0.0.1:50051", Address("127.0.0.1", 50051)),
        ("gRPC listening on 127.0.0.1:50051\n", Address("127.0.0.1", 50051)),
        ("gRPC listening on 0.0.0.0:1\r\n", Address("0.0.0.0", 1)),
        ("gRPC listening on ::1:8080", Address("::1", 8080)),
        ("gRPC listening on [::]:65535", Address("[::]", 65535)),
        ("gRPC listening on localhost:0", Address("localhost", 0)),
    ],
)
def test_the_listening_line_gives_its_address(line: str, address: Address):
    assert parse_listening(line) == address


@pytest.mark.parametrize(
    "line",
    [
        "",
        "stopped",
        "[replica 1] gRPC listening on 127.0.0.1:50051",
        "gRPC listening on 127.0.0.1",
        "gRPC listening on 127.0.0.1:port",
        "gRPC listening on 127.0.0.1:50051 and more",
        "HTTP/JSON (Envoy) listening on http://127.0.0.1:8080",
        "replica 1 (pid 42) gRPC on 127.0.0.1:50051",
    ],
)
def test_any_other_line_is_none(line: str):
    assert parse_listening(line) is None


def test_what_serve_prints_is_what_the_parser_reads():
    assert listening_line("127.0.0.1", 50051) == "gRPC listening on 127.0.0.1:50051"
    assert parse_listening(listening_line("10.0.0.7", 4242)) == Address("10.0.0.7", 4242)
