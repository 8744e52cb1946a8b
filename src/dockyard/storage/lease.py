"""The background-work lease: which one of the worker processes sharing a root runs the
store's periodic jobs (GC, adoption, scrub, mirroring passes, key purges).

Every worker serves requests; only the holder of this lease runs the jobs that walk the
store, so N workers never do the same walk N times, or a GC pass twice at once. The
lease is an ``flock`` of ``ROOT/_dockyard/leader``: taken by polling (the loop never
blocks), held for the life of the process, and released by the kernel when the process
dies, even by ``kill -9``, so another worker takes over on its next poll. With one
worker the first poll takes it, and nothing changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from dockyard.private import private_folder
from dockyard.storage.locks import open_lock_file, try_flock

log = logging.getLogger("dockyard.workers")

#: Seconds between two tries of a worker that does not hold the lease.
POLL_SECONDS = 1.0


class Lease:
    """Held by at most one process of those that share ``path``."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None: this process alone (a read-only look): always the holder."""
        self.path = path
        self._fd: int | None = None
        self._held = asyncio.Event() if path is not None else None

    @property
    def held(self) -> bool:
        return self._held is None or self._held.is_set()

    async def acquire(self) -> None:
        """Return once this process holds the lease (at once if it does)."""
        if self._held is None or self._held.is_set():
            return
        assert self.path is not None
        if self._fd is None:
            private_folder(self.path.parent)
            self._fd = open_lock_file(self.path)
        while not try_flock(self._fd):
            await asyncio.sleep(POLL_SECONDS)
        self._held.set()
        log.info("this worker (pid %d) runs the background jobs", os.getpid())

    async def run(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` once the lease is held (jobs wait on the same acquisition)."""
        if not self.held:
            if self._held is not None and self._fd is None:
                await self.acquire()
            else:
                assert self._held is not None
                while not self._held.is_set():  # another job is polling for it
                    await self._held.wait()
        await job()

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
