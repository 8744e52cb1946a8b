"""The background-work lease in Redis: one replica of all those sharing a store runs GC,
adoption, scrub, mirroring passes, key purges and the usage walk.

The lease is the key ``<namespace>:leader`` holding a token of this process, set with
``NX`` and an expiry. One task per process takes it when free and renews it every third
of the expiry while held. A holder killed with -9 stops renewing: another replica takes
the lease one expiry later. A holder that cannot renew (Redis down, a partition) gives
the lease up on its own before the expiry runs out, and its jobs are cancelled, so two
replicas never run them at once. After a ``FLUSHALL`` the key is gone; the holder sets it
again at its next renewal unless another replica took it first.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import redis

from dockyard.storage.shared.redis_client import describe

if TYPE_CHECKING:  # imported when a cacheDriver is used: see redis_client.async_client
    import redis.asyncio

log = logging.getLogger("dockyard.workers")

#: Renew if ours (or take it back when it vanished); 1 when held afterwards, else 0.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not holder then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisLease:
    """Held by at most one process of those sharing ``namespace`` in one Redis."""

    def __init__(
        self,
        client: redis.asyncio.Redis,
        sync: redis.Redis,
        namespace: str,
        expiry: float,
        poll: float = 1.0,
    ) -> None:
        self._redis, self._sync = client, sync
        self.key = f"{namespace}:leader"
        self._token = f"{os.getpid()}:{uuid.uuid4().hex}"
        self._expiry = expiry
        self._poll = min(poll, expiry / 3)
        self._renew = client.register_script(_RENEW)
        self._held = asyncio.Event()
        self._lost = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._valid_until = 0.0

    @property
    def held(self) -> bool:
        return self._held.is_set()

    async def run(self, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` while the lease is held; cancelled on a loss, started again when the
        lease comes back."""
        while True:
            if self._keeper is None:
                self._keeper = asyncio.create_task(self._keep(), name="lease")
            await self._held.wait()
            work = asyncio.ensure_future(job())
            lost = asyncio.ensure_future(self._lost.wait())
            try:
                await asyncio.wait({work, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                if not work.done():
                    work.cancel()
                lost.cancel()
            if work.done() and not work.cancelled():
                return work.result()
            await asyncio.gather(work, return_exceptions=True)

    async def _keep(self) -> None:
        expiry_ms = int(self._expiry * 1000)
        while True:
            ok: bool | None
            try:
                if self.held:
                    ok = bool(await self._renew(keys=[self.key], args=[self._token, expiry_ms]))
                else:
                    ok = bool(await self._redis.set(self.key, self._token, nx=True, px=expiry_ms))
            except (redis.RedisError, OSError) as exc:
                ok = None
                if self.held:
                    log.warning("the background lease was not renewed: %s", describe(exc))
            now = time.monotonic()
            if ok:
                self._valid_until = now + self._expiry
                if not self.held:
                    self._lost.clear()
                    self._held.set()
                    log.info("this replica (pid %d) runs the background jobs", os.getpid())
            elif self.held and (ok is False or now > self._valid_until - self._expiry / 2):
                self._held.clear()
                self._lost.set()
                log.warning("this replica (pid %d) lost the background lease", os.getpid())
            await asyncio.sleep(self._expiry / 3 if self.held else self._poll)

    def release(self) -> None:
        """Hand the lease over at once (shutdown), rather than after its expiry."""
        if self._keeper is not None:
            self._keeper.cancel()
            self._keeper = None
        if self.held:
            self._held.clear()
            try:
                self._sync.eval(_RELEASE, 1, self.key, self._token)
            except (redis.RedisError, OSError) as exc:
                log.warning("the background lease was not released: %s", describe(exc))
