"""The coordination of one root through Redis: what ``StorageRoot`` gets instead of the
local flock/mmap set when the config names a ``cacheDriver``."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import redis

from dockyard.storage.coordination import Coordination
from dockyard.storage.dedupe.locations import LocationMap
from dockyard.storage.dedupe.redis_locations import RedisLocations
from dockyard.storage.shared.redis_changes import RedisChanges
from dockyard.storage.shared.redis_client import (
    ANSWER_TIMEOUT,
    RedisSettings,
    async_client,
    describe,
    sync_client,
)
from dockyard.storage.shared.redis_lease import RedisLease
from dockyard.storage.shared.redis_locks import RedisLocks


def redis_coordination(settings: RedisSettings, lease_namespace: str) -> Coordination:
    """Locks, change counter, dedupe map and lease of one root in the Redis of ``settings``.

    ``lease_namespace``: the store's (one lease for every root of a registry).
    """
    aclient = async_client(settings.url)
    sclient = sync_client(settings.url)
    changes = RedisChanges(aclient, settings.namespace)
    locks = RedisLocks(aclient, settings.namespace, changes, settings.lock_expiry)
    lease = RedisLease(aclient, sclient, lease_namespace, settings.lock_expiry)

    def open_map(root: Path) -> LocationMap:
        return RedisLocations(root, sclient, settings.namespace)

    async def check() -> str | None:
        try:
            await asyncio.wait_for(aclient.ping(), ANSWER_TIMEOUT)
        except (redis.RedisError, OSError, TimeoutError) as exc:
            return f"redis at {redacted(settings.url)} does not answer: {describe(exc)}"
        return None

    def close() -> None:
        lease.release()
        with contextlib.suppress(redis.RedisError, OSError):
            sclient.close()

    return Coordination(locks, changes, open_map, lease, check, close)


def redacted(url: str) -> str:
    """``url`` without a password, for logs and probes."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.rpartition("@")[2]
    return scheme + sep + rest


def ping(url: str) -> str | None:
    """None when Redis at ``url`` answers a PING (``dockyard verify``), else why not."""
    client = sync_client(url)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"redis at {redacted(url)} does not answer: {describe(exc)}"
    finally:
        client.close()
    return None
