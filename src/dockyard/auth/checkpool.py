"""A small thread pool of its own for password checks, apart from the storage threads.

bcrypt is slow on purpose and runs in a thread. In asyncio's default pool it queued
beside the storage work (``asyncio.to_thread``: publishing blobs, writing indexes), so a
flood of wrong passwords made every push wait behind it. Here the checks get a few
threads of their own (half the cores, at least one, at most :data:`MOST_THREADS`): a
flood can only lengthen the queue of other password checks, and it leaves the other
cores to the event loop and the storage threads.

The pool belongs to the running app: it is started when the app starts and shut down
when it stops (:meth:`PasswordPool.lifetime`), never created at import.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from aiohttp import web

T = TypeVar("T")

#: The pool never grows past this many threads, whatever the core count.
MOST_THREADS = 4


def default_threads() -> int:
    """Half the cores this process may use, so bcrypt never takes them all."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MOST_THREADS, cores // 2))


class PasswordPool:
    """Runs password checks in threads of their own while the app runs."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or default_threads()
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the pool. Before the app starts (or after it stops) the
        check runs in asyncio's default pool instead, so it is never refused."""
        if self._executor is None:
            return await asyncio.to_thread(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def lifetime(self, app: web.Application) -> AsyncIterator[None]:
        """An aiohttp ``cleanup_ctx``: the threads exist while the app serves."""
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="password")
        try:
            yield
        finally:
            executor, self._executor = self._executor, None
            executor.shutdown(wait=False, cancel_futures=True)
