"""A root's change counter in Redis: read-your-writes across replicas.

The local counter (``storage/changes.py``) is a shared mmap: reading it costs nothing, so
every cache compares it on every read. Replicas on several machines need a counter all of
them reach, and a Redis round trip must not block the event loop. So the counter is
split in two steps the protocol names:

- ``bump()`` (sync, from any thread) counts a change made here; ``publish()`` (async)
  sends the count with one ``INCRBY``. A write is published before it is acknowledged:
  the repository lock publishes before it is released, and the HTTP side publishes
  before a response leaves.
- ``refresh()`` (async) fetches the counter; ``seen()`` (sync) answers the last value
  fetched, with this process's own bumps. The HTTP side refreshes before a request
  reads storage, and taking a repository lock refreshes too, so a holder never edits a
  stale ``index.json`` parse. Concurrent requests share fetches, but a request only joins
  a fetch sent after it arrived: joining an earlier one could miss a write acknowledged
  just before it came (no validity window: that would break read-your-writes).

The value is ``<epoch>:<count>``. The epoch is a random word set with the first publish
after the key vanished, so a ``FLUSHALL`` (which resets the count) can never make an old
value come back: every cache checks its files again, and nothing is trusted blindly.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import TYPE_CHECKING

from dockyard.storage.errors import Unavailable
from dockyard.storage.shared.redis_client import unavailable

if TYPE_CHECKING:  # imported when a cacheDriver is used: see redis_client.async_client
    import redis.asyncio

#: INCRBY the count; name an epoch when there is none (first publish, or after a flush).
_PUBLISH = """
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SET', KEYS[2], ARGV[2]) end
return redis.call('INCRBY', KEYS[1], ARGV[1])
"""


class RedisChanges:
    """The change counter of one root, ``<namespace>:changes`` and ``:epoch`` in Redis."""

    def __init__(self, client: redis.asyncio.Redis, namespace: str) -> None:
        self._redis = client
        self._keys = (f"{namespace}:changes", f"{namespace}:epoch")
        self._publish_script = client.register_script(_PUBLISH)
        #: The fetch's own connection: fetches run one at a time, and a bare connection
        #: costs a third of the client's CPU per call (no pool, no command dispatch).
        self._conn = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        #: The last value fetched (never fetched: empty, unequal to any fetched value).
        self._value = b""
        self._lock = threading.Lock()  # bump() runs in threads (index writes)
        self._local = 0
        self._pending = 0
        self._sending: set[asyncio.Future[None]] = set()
        self._running: asyncio.Future[None] | None = None
        self._queued: asyncio.Future[None] | None = None

    def seen(self) -> bytes:
        return b"%s/%d" % (self._value, self._local)

    def bump(self) -> None:
        with self._lock:
            self._local += 1
            self._pending += 1

    async def refresh(self) -> None:
        """Fetch the counter; Unavailable when Redis does not answer."""
        if self._running is None:
            waited = self._running = self._start()
        else:
            # The fetch under way may have been sent before this call: wait for the next.
            if self._queued is None:
                self._queued = asyncio.get_running_loop().create_future()
                self._queued.add_done_callback(_retrieve)
            waited = self._queued
        await asyncio.shield(waited)

    def _start(self) -> asyncio.Future[None]:
        task = asyncio.ensure_future(self._fetch())
        task.add_done_callback(self._fetched)
        return task

    def _fetched(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved: each waiter gets it through its shield
        self._running = None
        queued, self._queued = self._queued, None
        if queued is not None:
            nxt = self._running = self._start()
            nxt.add_done_callback(lambda done: _copy(done, queued))

    async def _fetch(self) -> None:
        conn = self._conn
        with unavailable("the change counter"):
            try:
                await conn.send_command("MGET", self._keys[1], self._keys[0])
                epoch, count = await conn.read_response()
            except BaseException:
                await conn.disconnect()  # the next fetch connects afresh (Redis restarted)
                raise
        self._value = b"%s:%s" % (epoch or b"-", count or b"0")

    async def publish(self) -> None:
        """Send the bumps made here (and wait for those already on their way)."""
        with self._lock:
            count, self._pending = self._pending, 0
        if count:
            sending = asyncio.ensure_future(self._send(count))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)
        if not self._sending:
            return
        results = await asyncio.gather(
            *(asyncio.shield(s) for s in list(self._sending)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, Unavailable):
                raise result

    async def _send(self, count: int) -> None:
        try:
            with unavailable("the change counter"):
                await self._publish_script(keys=list(self._keys), args=[count, uuid.uuid4().hex])
        except Unavailable:
            with self._lock:
                self._pending += count  # the next publish tries again
            raise

    def close(self) -> None:
        """The clients belong to the root's coordination, which closes them."""


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a shared future's failure as seen: its waiters may all have been cancelled."""
    if not future.cancelled():
        future.exception()


def _copy(source: asyncio.Future[None], target: asyncio.Future[None]) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (exc := source.exception()) is not None:
        target.set_exception(exc)
    else:
        target.set_result(None)
