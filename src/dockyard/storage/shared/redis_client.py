"""Redis clients for one ``cacheDriver``, and what a failed call becomes.

Every call has a short timeout, so a Redis that is down or hung turns a request into a
503 in about a second instead of holding it; one retry on a fresh connection covers the
pooled connections a restarted Redis has closed, so a replica recovers on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dockyard.storage.errors import Unavailable

if TYPE_CHECKING:
    import redis.asyncio

#: Seconds to connect, and to wait for an answer, before Redis counts as down.
CONNECT_TIMEOUT = 1.0
ANSWER_TIMEOUT = 2.0


@dataclass(frozen=True)
class RedisSettings:
    """Where a root's shared state lives: the server and the root's key namespace."""

    url: str
    #: Prefix of every key of this root (the config's ``keyprefix`` and the root's name).
    namespace: str
    #: Seconds a lock or the lease outlives a holder that stopped renewing it (kill -9).
    lock_expiry: float = 30.0


def sync_client(url: str) -> redis.Redis:
    """For threads and shutdown (the dedupe map, releasing the lease)."""
    return redis.Redis.from_url(
        url,
        socket_timeout=ANSWER_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=Retry(NoBackoff(), 1),
    )


def async_client(url: str) -> redis.asyncio.Redis:
    """For the event loop (locks, the lease, the change counter): never blocks it.

    Imported here, not with the module: only a config with a ``cacheDriver`` needs it, and
    on Python before 3.11.3 it needs the ``async-timeout`` backport as well.
    """
    import redis.asyncio
    from redis.asyncio.retry import Retry as AsyncRetry

    client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
        url,
        socket_timeout=ANSWER_TIMEOUT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        retry=AsyncRetry(NoBackoff(), 1),
    )
    return client


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextmanager
def unavailable(what: str) -> Iterator[None]:
    """Turn a failed Redis call into :class:`Unavailable` (a 503 the client retries)."""
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise Unavailable(
            f"the shared cache (Redis) did not answer {what}: {describe(exc)}"
        ) from exc
