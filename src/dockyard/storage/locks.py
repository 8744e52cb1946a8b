"""Locks keyed by name (a repository, a digest), so unrelated work never waits.

A single store-wide lock is what makes zot stall every repository while it walks one
(zot #2964, #4349); here each repository has its own, taken only to publish.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class KeyedLocks:
    """One asyncio lock per key, dropped again once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        #: Told how long each acquisition waited (metrics); None costs nothing.
        self.on_wait: Callable[[float], None] | None = None

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            started = time.perf_counter()
            async with lock:
                if self.on_wait is not None:
                    self.on_wait(time.perf_counter() - started)
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]
