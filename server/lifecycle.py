"""What `serve` and the replica supervisor share: the event loop they run
on, the signals that stop them, and how they tell the operator."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Coroutine
from typing import Any


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where it is installed: about 30% more creates per second
    than the standard event loop (BENCHMARKS.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM. Installed first thing, so that a
    signal arriving as soon as a port is announced still stops cleanly."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    return stopping


def say(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
