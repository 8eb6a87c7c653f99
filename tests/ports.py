"""A free TCP port, for the tests and the benchmark (bench/ imports this
module, so it uses nothing but the standard library)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on at this moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
