"""Storage's worker processes: heavy walks run outside the server, at idle priority, and a
long step never queues a short one behind it (GC unlinking a large repository must not
hold up the usage walk of a repository just pushed)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import pytest

from dockyard.storage.workers import in_walker, stop_walker


@pytest.fixture(autouse=True)
def _fresh_workers() -> Iterator[None]:
    stop_walker()
    yield
    stop_walker()


def test_walks_run_in_another_process_at_idle_priority() -> None:
    async def main() -> tuple[int, int]:
        pid = await in_walker(os.getpid)
        policy = await in_walker(os.sched_getscheduler, 0)
        return pid, policy

    pid, policy = asyncio.run(main())
    assert pid != os.getpid()
    assert policy == os.SCHED_IDLE


def test_a_short_walk_does_not_wait_behind_a_long_one() -> None:
    async def main() -> tuple[float, bool]:
        long = asyncio.ensure_future(in_walker(time.sleep, 5.0))
        await asyncio.sleep(0.2)  # the long step has started
        started = time.monotonic()
        await in_walker(os.getpid)
        waited = time.monotonic() - started
        done = long.done()
        await long
        return waited, done

    waited, long_done = asyncio.run(main())
    assert not long_done
    assert waited < 4.0
