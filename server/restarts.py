"""When `serve --replicas N` restarts a replica that died: after a delay that
doubles with each exit (starting over once the replica has stayed up a
while), and not at all once it exits too often, since a crash loop is a
fault to report rather than to hide."""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    first_delay: float = 0.5
    max_delay: float = 10.0
    # Up this long, a replica's next exit starts the doubling over.
    stable_after: float = 30.0
    # This many exits within crash_window seconds are a crash loop.
    crash_limit: int = 5
    crash_window: float = 60.0


class RestartBackoff:
    """One replica's starts and exits. Times are readings of the caller's
    monotonic clock, in seconds."""

    def __init__(self, policy: RestartPolicy, started_at: float) -> None:
        self._policy = policy
        self._started_at = started_at
        self._recent_exits: deque[float] = deque()
        self._next_delay = policy.first_delay

    def started(self, now: float) -> None:
        self._started_at = now

    def exited(self, now: float) -> float | None:
        """Seconds to wait before restarting after an exit at `now`; None
        when this exit makes a crash loop."""
        policy = self._policy
        self._recent_exits.append(now)
        while self._recent_exits[0] <= now - policy.crash_window:
            self._recent_exits.popleft()
        if len(self._recent_exits) >= policy.crash_limit:
            return None
        if now - self._started_at >= policy.stable_after:
            self._next_delay = policy.first_delay
        delay = self._next_delay
        self._next_delay = min(delay * 2, policy.max_delay)
        return delay


def describe_exit(returncode: int) -> str:
    """A process's exit status as an operator reads it: "exit code 1",
    "killed by SIGKILL" (asyncio gives a signal as a negative code)."""
    if returncode >= 0:
        return f"exit code {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"
