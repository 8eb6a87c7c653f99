"""What handing work to a thread and back costs this machine, beside the
work itself: the figure storage/loop_first.py is built on.

    .venv/bin/python bench/executor_hop.py

Each row runs the same loop of additions (about 0, 50 and 250 µs of work)
5,000 times in the calling thread, then 5,000 times through uvloop's
`loop.run_in_executor` (one at a time, as one call's page would be), and
prints the CPU per call of both."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import uvloop

CALLS = 5_000


def work(additions: int) -> int:
    total = 0
    for i in range(additions):
        total += i
    return total


async def through_executor(executor: ThreadPoolExecutor, additions: int) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(CALLS):
        await loop.run_in_executor(executor, work, additions)


def main() -> None:
    print(f"{'work':>10}{'inline CPU us':>16}{'executor CPU us':>18}{'hop costs us':>15}")
    with ThreadPoolExecutor(2) as executor:
        for additions in (10, 2_000, 10_000):
            began = time.process_time()
            for _ in range(CALLS):
                work(additions)
            inline = (time.process_time() - began) / CALLS * 1e6
            began = time.process_time()
            uvloop.run(through_executor(executor, additions))  # the server's loop
            hopped = (time.process_time() - began) / CALLS * 1e6
            print(f"{additions:>10,}{inline:>16,.0f}{hopped:>18,.0f}{hopped - inline:>15,.0f}")


if __name__ == "__main__":
    main()
