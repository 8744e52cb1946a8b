"""The dedupe map in Redis, shared by every replica of a root on object storage.

The same hint as the SQLite map (``locations.py``), with the same rules: paths relative to
the root, a record whose object vanished is dropped by whoever finds it, and a digest's key
exists exactly while some record names it. Each digest is a Redis set of paths, so removing
its last member removes the key: the digest is dropped with its last reference, with no
separate clean-up that a crash could skip.

Redis is never the only copy of a fact. Everything here can be rebuilt from a listing of
the bucket (adoption), so a ``FLUSHALL`` or a new, empty Redis costs missed dedupe until
then, never an image (the failure of zot #4062, where the cache held the only pointer).
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import redis

from dockyard.storage.shared.redis_client import unavailable


class RedisLocations:
    """Digest -> relative paths in Redis under ``namespace`` (one per storage root)."""

    def __init__(self, root: Path, client: redis.Redis, namespace: str) -> None:
        self.root = root
        self._redis = client
        self._ns = namespace

    def _key(self, digest: str) -> str:
        return f"{self._ns}:paths:{digest}"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add(self, digest: str, path: Path) -> None:
        with unavailable("the dedupe map"):
            self._redis.sadd(self._key(digest), self.relative(path))

    def remove(self, digest: str, path: Path) -> None:
        with unavailable("the dedupe map"):
            self._redis.srem(self._key(digest), self.relative(path))

    def remove_many(self, records: list[tuple[str, str]]) -> None:
        """Drop many (digest, relative path) records in one round trip (a GC pass)."""
        pipe = self._redis.pipeline(transaction=False)
        for digest, relative in records:
            pipe.srem(self._key(digest), relative)
        with unavailable("the dedupe map"):
            pipe.execute()

    def paths(self, digest: str) -> list[Path]:
        # redis-py types its sync and asyncio clients as one: this client is the sync one.
        with unavailable("the dedupe map"):
            members = cast(set[bytes], self._redis.smembers(self._key(digest)))
        names = sorted(m.decode() for m in members)
        return [self.root / name for name in names]

    def has_digest(self, digest: str) -> bool:
        with unavailable("the dedupe map"):
            return bool(self._redis.exists(self._key(digest)))

    def get_meta(self, key: str) -> str | None:
        with unavailable("the dedupe map"):
            value = cast(bytes | None, self._redis.hget(f"{self._ns}:meta", key))
        return None if value is None else value.decode()

    def set_meta(self, key: str, value: str) -> None:
        with unavailable("the dedupe map"):
            self._redis.hset(f"{self._ns}:meta", key, value)

    def close(self) -> None:
        """The client is shared by the process: whoever made it closes it."""
