"""When `serve --replicas N` restarts a dead replica, and when it gives up:
the policy on a clock the tests set (seconds, as the event loop's)."""

from __future__ import annotations

import pytest

from modelregistry_server.restarts import RestartBackoff, RestartPolicy, describe_exit

POLICY = RestartPolicy()


class Replica:
    """A replica under the policy, on a clock the test moves."""

    def __init__(self, policy: RestartPolicy = POLICY) -> None:
        self.now = 1000.0
        self.backoff = RestartBackoff(policy, started_at=self.now)

    def runs_then_exits(self, seconds: float) -> float | None:
        """Up `seconds`, then exits: the delay before its restart, None for
        a crash loop. A restart (after the delay) is its next start."""
        self.now += seconds
        delay = self.backoff.exited(self.now)
        if delay is not None:
            self.now += delay
            self.backoff.started(self.now)
        return delay


def test_the_defaults():
    assert POLICY == RestartPolicy(
        first_delay=0.5, max_delay=10.0, stable_after=30.0, crash_limit=5, crash_window=60.0
    )


def test_the_delay_doubles_up_to_ten_seconds():
    replica = Replica()
    # Up 25 s each time: never stable, never 5 exits a minute.
    delays = [replica.runs_then_exits(25) for _ in range(8)]
    assert delays == [0.5, 1, 2, 4, 8, 10, 10, 10]


def test_staying_up_long_enough_starts_the_doubling_over():
    replica = Replica()
    assert [replica.runs_then_exits(25) for _ in range(4)] == [0.5, 1, 2, 4]
    assert replica.runs_then_exits(30) == 0.5
    assert replica.runs_then_exits(25) == 1
    assert replica.runs_then_exits(29.9) == 2


def test_five_exits_within_a_minute_are_a_crash_loop():
    replica = Replica()
    # Dies 1 s after each start: exits at 1, 2.5, 4.5, 7.5, 12.5 s.
    assert [replica.runs_then_exits(1) for _ in range(4)] == [0.5, 1, 2, 4]
    assert replica.runs_then_exits(1) is None


def test_exits_a_minute_old_no_longer_count():
    replica = Replica()
    first_exit = replica.now + 1
    assert [replica.runs_then_exits(1) for _ in range(4)] == [0.5, 1, 2, 4]
    # The fifth exit exactly 60 s after the first: four within the window
    # (and up 49.5 s, so the doubling starts over).
    assert replica.runs_then_exits(first_exit + 60 - replica.now) == 0.5
    # Another right away: five within 60 s again.
    assert replica.runs_then_exits(0.1) is None


def test_a_limit_of_one_gives_up_at_the_first_exit():
    replica = Replica(RestartPolicy(crash_limit=1))
    assert replica.runs_then_exits(3600) is None


@pytest.mark.parametrize(
    ("returncode", "said"),
    [
        (0, "exit code 0"),
        (1, "exit code 1"),
        (-9, "killed by SIGKILL"),
        (-15, "killed by SIGTERM"),
        (-11, "killed by SIGSEGV"),
        (-200, "killed by signal 200"),
    ],
)
def test_an_exit_is_described_by_its_code_or_signal(returncode: int, said: str):
    assert describe_exit(returncode) == said
