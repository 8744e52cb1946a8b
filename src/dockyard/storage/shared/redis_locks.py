"""Locks by key in Redis, for replicas on several machines: with an expiry and a fence.

Each key is first an asyncio lock (waiters of one process queue on it, and only one of
them polls Redis), then a Redis key ``<namespace>:lock:<key>`` set with ``NX`` and an
expiry to a token of this holding. While it is held a task renews the expiry every third
of it, so only a holder that stopped (kill -9, a lost network) lets it lapse, and the
repository is free again one expiry later: a dead replica cannot wedge it.

An expired holder may still be running (a long pause, a partition) and must not publish
over what the next holder wrote. So the publish step first calls ``fence()``: one Lua
call that checks the key still holds this token with at least half the expiry left, and
extends it. Otherwise ``LockLost`` (503): nothing is published and the client retries.
The rename that follows is a local step of microseconds, far inside the half expiry
the fence guarantees; an object store adds its own last guard (a conditional write).

Taking a lock refreshes the root's change counter, so the holder reads what the previous
holder wrote; leaving it publishes this holder's changes before the key is deleted and
before the caller answers its client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import redis

from dockyard.storage.coordination import Changes
from dockyard.storage.errors import LockLost, Unavailable
from dockyard.storage.shared.redis_client import describe, unavailable

if TYPE_CHECKING:  # imported when a cacheDriver is used: see redis_client.async_client
    import redis.asyncio

log = logging.getLogger("dockyard.store")

#: First and longest pause between two tries of a lock another replica holds.
_FIRST_PAUSE = 0.002
_LONGEST_PAUSE = 0.05

#: Extend the expiry if this holding still holds it (and, for the fence, has at least
#: ARGV[3] ms left); 1 if so, else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
#: Delete the key only if this holding still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisHeld:
    """One holding of one key."""

    def __init__(self, locks: RedisLocks, name: str, token: str) -> None:
        self._locks = locks
        self.name = name
        self.token = token
        #: Set when a renewal found the key gone or another's: never publish again.
        self.lost = False

    async def fence(self) -> None:
        expiry_ms = self._locks.expiry_ms
        if not self.lost:
            with unavailable("the lock check before a publish"):
                ok = await self._locks.renew(self.name, self.token, expiry_ms // 2)
            self.lost = not ok
        if self.lost:
            raise LockLost(
                "the repository lock expired or was taken over before this change was "
                "published; nothing was published, retry",
                {"lock": self.name},
            )


class RedisLocks:
    """Keyed locks shared by every replica using ``client`` under ``namespace``."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        namespace: str,
        changes: Changes,
        expiry: float,
    ) -> None:
        self._redis = client
        self._ns = namespace
        self._changes = changes
        self.expiry_ms = max(int(expiry * 1000), 300)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        self.on_wait: Callable[[float], None] | None = None

    def key(self, name: str) -> str:
        """The Redis key of lock ``name`` (a test looks for it)."""
        return f"{self._ns}:lock:{name}"

    async def renew(self, name: str, token: str, at_least_ms: int = 0) -> bool:
        args: list[str | int] = [token, self.expiry_ms, at_least_ms]
        return bool(await self._renew(keys=[name], args=args))

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[RedisHeld]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            started = time.perf_counter()
            async with lock:
                held = await self._take(self.key(key))
                keeper = asyncio.create_task(self._keep(held), name=f"lock-renew {key}")
                try:
                    await self._changes.refresh()
                    if self.on_wait is not None:
                        self.on_wait(time.perf_counter() - started)
                    try:
                        yield held
                    except BaseException:
                        # Changes made before the failure are still announced, best effort.
                        await _quietly(self._changes.publish())
                        raise
                    await self._changes.publish()
                finally:
                    keeper.cancel()
                    await _quietly(self._release(keys=[held.name], args=[held.token]))
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]

    async def _take(self, name: str) -> RedisHeld:
        token = uuid.uuid4().hex
        pause = _FIRST_PAUSE
        while True:
            with unavailable("a lock request"):
                if await self._redis.set(name, token, nx=True, px=self.expiry_ms):
                    return RedisHeld(self, name, token)
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)

    async def _keep(self, held: RedisHeld) -> None:
        """Renew every third of the expiry while held; note a loss (the fence refuses)."""
        while not held.lost:
            await asyncio.sleep(self.expiry_ms / 3000)
            try:
                if not await self.renew(held.name, held.token):
                    held.lost = True
                    log.warning("lock %s expired or was taken over while held", held.name)
            except (redis.RedisError, OSError) as exc:
                # Not lost yet: the fence decides when it is asked.
                log.warning("lock %s not renewed: %s", held.name, describe(exc))


async def _quietly(step: object) -> None:
    """Await ``step``; a Redis failure is logged, not raised (the expiry cleans up)."""
    try:
        await step  # type: ignore[misc]
    except (Unavailable, redis.RedisError, OSError) as exc:
        log.warning("redis clean-up step failed: %s", describe(exc))
