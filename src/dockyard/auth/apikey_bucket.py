"""API keys of replicas on one bucket: an object per key, validated by a version in Redis.

Replicas share nothing local, so their keys live where every one of them reads: the
bucket, under the root's private prefix, written through the root's storage backend
(``_dockyard/apikeys/<sha256 of the key>.json``: one PUT, whole or absent). As in SQLite,
only the key's hash is stored. When a key was last used is a second object,
``<hash>.used``: a use (recorded by any replica) must never write the record itself,
or it could bring back a key another replica has just revoked.

Each replica keeps every record in memory, valid at a version kept in Redis
(``<namespace>:apikeys``). A change (create, revoke, purge) is written to the bucket
first, then the version is set to a new random value, and only then acknowledged. Every
authentication reads the version (one Redis GET on the event loop, no thread, no S3
call); when it moved, a thread lists the folder again and reads the records not seen
before, so a key revoked through one replica is refused by every replica on its next
request.

Redis is never the only copy. After a ``FLUSHALL`` the version is missing: the first
replica to notice sets a new one and every replica reloads from the bucket. While Redis
does not answer, a key is checked by reading its object from the bucket (a round trip per
request, but the right answer), and the cache is dropped so that it is never trusted
again before it was checked against the version.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dockyard.auth.apikey_store import LAST_USED_EVERY, PREFIX, ApiKey, hash_key, new_key, usable
from dockyard.storage.backend import StorageBackend
from dockyard.storage.errors import Unavailable
from dockyard.storage.paths import apikeys_dir
from dockyard.storage.shared.redis_client import unavailable

if TYPE_CHECKING:
    import redis
    import redis.asyncio

log = logging.getLogger("dockyard.auth")

_RECORD = ".json"
_USED = ".used"
#: A record is a few hundred bytes; anything far larger is not one of ours.
_MOST_BYTES = 64 * 1024


class BucketKeyStore:
    """Keys as objects under ``root``'s private prefix, cached per replica. :meth:`verify`
    runs on the event loop; every other method blocks (the backend, Redis), so callers
    run it in a thread."""

    def __init__(
        self,
        backend: StorageBackend,
        root: Path,
        client: redis.Redis,
        aclient: redis.asyncio.Redis,
        namespace: str,
    ) -> None:
        self._backend = backend
        self._folder = apikeys_dir(root)
        self._redis = client
        self._aredis = aclient
        self._version_key = f"{namespace}:apikeys"
        #: Held by the thread catching the cache up (never on the event loop), so loads
        #: run one at a time and each pairs its records with the version read before.
        self._loading = threading.Lock()
        #: The version the cache is valid at; None: not valid at any (reload first).
        #: Set after the records it goes with, which are replaced whole, never edited:
        #: the event loop reads both without a lock.
        self._seen: bytes | None = None
        #: key hash -> its record, and each record object's identity (ETag) when read.
        self._records: dict[str, ApiKey] = {}
        self._identities: dict[str, int] = {}
        #: Hashes that have a ``.used`` object (a purge drops those of revoked keys).
        self._used: set[str] = set()
        self._touched: dict[str, float] = {}
        #: A change is in the bucket but its new version could not be set (Redis down):
        #: set before anything else is done, so no replica keeps trusting its cache.
        self._unannounced = False
        #: The catch-up thread under way, and the one queued after it (see _catch_up).
        self._running: asyncio.Future[None] | None = None
        self._queued: asyncio.Future[None] | None = None

    # --- the version ----------------------------------------------------------------------

    def _version(self) -> bytes:
        """The current version, a new one when there is none (a FLUSHALL); Unavailable
        when Redis does not answer."""
        with unavailable("the API keys' version"):
            if self._unannounced:
                self._redis.set(self._version_key, uuid.uuid4().hex)
                self._unannounced = False
            value = self._redis.get(self._version_key)
            if value is None:
                self._redis.set(self._version_key, uuid.uuid4().hex, nx=True)
                value = self._redis.get(self._version_key)
        return value if isinstance(value, bytes) else b""

    async def _version_on_loop(self) -> bytes | None:
        """:meth:`_version` through the async client; None when a change of this replica
        still needs announcing (a thread does it)."""
        if self._unannounced:
            return None
        with unavailable("the API keys' version"):
            value = await self._aredis.get(self._version_key)
            if value is None:
                await self._aredis.set(self._version_key, uuid.uuid4().hex, nx=True)
                value = await self._aredis.get(self._version_key)
        return value if isinstance(value, bytes) and value else None

    def _announce(self) -> None:
        """Tell every replica that the keys changed (after the bucket holds the change)."""
        self._unannounced = True
        with unavailable("the API keys' version"):
            self._redis.set(self._version_key, uuid.uuid4().hex)
        self._unannounced = False

    # --- the cache ------------------------------------------------------------------------

    def _current(self, fresh: bool = False) -> dict[str, ApiKey]:
        """Every record, current (:meth:`_refresh`)."""
        self._refresh(fresh)
        return self._records

    def _refresh(self, fresh: bool = False) -> None:
        """Make the cache current: kept when the version has not moved since it was
        loaded; ``fresh``: caught up with a new listing whatever the version says."""
        with self._loading:
            try:
                version: bytes | None = self._version()
            except Unavailable:
                if not fresh:
                    raise
                version = None  # a listing answers right; the cache stays unvalidated
            if not version:
                version = None  # flushed again at once: trust no cache on it
            if fresh or version is None or version != self._seen:
                self._seen = None
                self._load()
                self._seen = version

    def _load(self) -> None:
        """Catch the cache up with a listing: read the records not seen before."""
        listed: dict[str, int] = {}
        used: set[str] = set()
        for entry in self._backend.list(self._folder):
            if entry.is_dir:
                continue
            if entry.name.endswith(_RECORD):
                listed[entry.name.removesuffix(_RECORD)] = entry.ino
            elif entry.name.endswith(_USED):
                used.add(entry.name.removesuffix(_USED))
        records: dict[str, ApiKey] = {}
        for digest, identity in listed.items():
            known = self._records.get(digest)
            if known is not None and self._identities.get(digest) == identity:
                records[digest] = known
                continue
            record = self._read(digest)
            if record is not None:
                records[digest] = record
        self._records, self._identities, self._used = records, listed, used

    def _read(self, digest: str) -> ApiKey | None:
        """One record from the bucket; None when absent or not a record."""
        try:
            raw = self._backend.read_bytes(self._path(digest, _RECORD), _MOST_BYTES)
        except FileNotFoundError:
            return None
        try:
            return _parse(json.loads(raw))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("API key record %s is not readable, ignored: %s", digest[:12], exc)
            return None

    def _path(self, digest: str, suffix: str) -> Path:
        return self._folder / f"{digest}{suffix}"

    # --- the store ------------------------------------------------------------------------

    def create(
        self,
        user: str,
        label: str,
        scopes: list[str] | None,
        expires_at: float | None,
        creator_ua: str,
        source: str = "htpasswd",
    ) -> tuple[str, ApiKey]:
        self._version()  # Redis down: a 503 before anything is written
        secret, record = new_key(user, label, scopes, expires_at, creator_ua, source)
        path = self._path(hash_key(secret), _RECORD)
        self._backend.write_atomic(path, json.dumps(_dump(record)).encode())
        try:
            self._announce()
        except Unavailable:
            # The secret is never shown: leave no key behind that no one could use (the
            # version is still set anew by the next call, in case a replica read it).
            self._backend.delete(path)
            raise
        return secret, record

    async def verify(self, user: str, secret: str) -> ApiKey | None:
        """On the event loop: one Redis GET while nothing changed; a thread otherwise."""
        if not secret.startswith(PREFIX):
            return None
        digest = hash_key(secret)
        try:
            version = await self._version_on_loop()
            if version is None or version != self._seen:
                await self._catch_up()
        except Unavailable:
            return await asyncio.to_thread(self._verify_in_bucket, user, digest)
        record = usable(self._records.get(digest), user)
        if record is not None and self._touch_due(digest):
            await asyncio.to_thread(self._touch, digest)
        return record

    async def _catch_up(self) -> None:
        """A refresh that starts after this call, shared by every request waiting for one.

        One thread at a time catches up, however many requests saw the version move: a
        burst of requests with keys after a change must not take every thread of the
        default executor (object storage calls run there too). A refresh already under
        way may have read the version before this request did, so the request waits for
        the next one, which all requests arriving meanwhile share.
        """
        waiting = self._queued
        if waiting is None:
            waiting = self._queued = asyncio.get_running_loop().create_future()
            waiting.add_done_callback(_retrieve)
            if self._running is None:
                self._start_queued()
        await asyncio.shield(waiting)

    def _start_queued(self) -> None:
        waiting, self._queued = self._queued, None
        assert waiting is not None
        running = self._running = asyncio.ensure_future(asyncio.to_thread(self._refresh))

        def done(task: asyncio.Future[None]) -> None:
            self._running = None
            if not waiting.done():
                if task.cancelled():
                    waiting.cancel()
                elif (exc := task.exception()) is not None:
                    waiting.set_exception(exc)
                else:
                    waiting.set_result(None)
            if self._queued is not None:
                self._start_queued()

        running.add_done_callback(done)

    def _verify_in_bucket(self, user: str, digest: str) -> ApiKey | None:
        """Redis does not answer: the key's own object decides, and the cache is not
        trusted again before it was checked against the version."""
        self._seen = None
        record = usable(self._read(digest), user)
        if record is not None and self._touch_due(digest):
            self._touch(digest)
        return record

    def _touch_due(self, digest: str) -> bool:
        return time.time() - self._touched.get(digest, 0.0) >= LAST_USED_EVERY

    def _touch(self, digest: str) -> None:
        now = time.time()
        self._touched[digest] = now
        self._backend.write(self._path(digest, _USED), repr(now).encode())

    def _last_used(self, digest: str) -> float | None:
        try:
            return float(self._backend.read_bytes(self._path(digest, _USED), 64))
        except (FileNotFoundError, ValueError):
            return None

    def list(self, user: str) -> list[ApiKey]:
        records = self._current(fresh=True)
        used = self._used
        found = []
        for digest, record in records.items():
            if record.user != user:
                continue
            if digest in used:
                record = replace(record, last_used=self._last_used(digest))
            found.append(record)
        return sorted(found, key=lambda record: record.created_at)

    def revoke(self, user: str, key_id: str) -> bool:
        self._version()  # Redis down: a 503 before anything is deleted
        for digest, record in self._current(fresh=True).items():
            if record.id == key_id and record.user == user:
                self._delete(digest)
                self._announce()
                return True
        return False

    def _delete(self, digest: str) -> None:
        self._backend.delete(self._path(digest, _RECORD))
        self._backend.delete(self._path(digest, _USED))
        self._touched.pop(digest, None)

    def users(self, source: str) -> set[str]:
        return {r.user for r in self._current(fresh=True).values() if r.source == source}

    def purge(self, now: float, gone: set[str], source: str) -> int:
        self._version()  # Redis down: this pass deletes nothing, the next one will
        records = self._current(fresh=True)
        doomed = [
            digest
            for digest, record in records.items()
            if record.expired(now) or (record.user in gone and record.source == source)
        ]
        for digest in doomed:
            self._delete(digest)
        if doomed:
            self._announce()
        orphans = self._used - set(records)
        for digest in orphans:  # a use recorded just as its key was revoked
            self._backend.delete(self._path(digest, _USED))
        return len(doomed)

    def close(self) -> None:
        self._redis.close()  # the async client's connections go with the event loop


def _dump(record: ApiKey) -> dict[str, Any]:
    return {
        "id": record.id,
        "user": record.user,
        "label": record.label,
        "scopes": list(record.scopes) if record.scopes else None,
        "createdAt": record.created_at,
        "expiresAt": record.expires_at,
        "creatorUa": record.creator_ua,
        "source": record.source,
    }


def _parse(doc: dict[str, Any]) -> ApiKey:
    scopes = doc.get("scopes")
    expires = doc.get("expiresAt")
    return ApiKey(
        id=str(doc["id"]),
        user=str(doc["user"]),
        label=str(doc.get("label") or ""),
        scopes=tuple(str(s) for s in scopes) if scopes else None,
        created_at=float(doc["createdAt"]),
        expires_at=None if expires is None else float(expires),
        last_used=None,
        creator_ua=str(doc.get("creatorUa") or ""),
        source=str(doc.get("source") or "htpasswd"),
    )


def _retrieve(future: asyncio.Future[None]) -> None:
    """Mark a shared future's failure as seen: its waiters may all have been cancelled."""
    if not future.cancelled():
        future.exception()
