"""API keys: long-lived passwords a user creates and revokes, stored durably and hashed.

A key is ``zak_`` and 160 random bits in hex. It is shown once, when created; what is
stored under the root (``_dockyard/apikeys.db``, SQLite, fsynced on every change) is its
SHA-256, which is safe for a high-entropy secret and needs no per-key salt: a lookup by
hash finds the row, and nothing derived from the key's bytes is ever compared by hand.
Keys survive restarts, unlike zot's in-memory ones (zot #2591). A key belongs to the user
who created it, may be limited to some repositories (``scopes``, as globs) and may expire.
It also records how its user logged in to create it (``source``: ``htpasswd`` or
``mtls``), because a key is good only while that identity source still knows the user
(checked by the authenticator); keys from before that column are taken as ``htpasswd``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import sqlite3
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.dbfile import SharedDB

PREFIX = "zak_"
DB_DIR = "_dockyard"
DB_FILE = "apikeys.db"
#: lastUsed is written at most this often per key, so using a key costs no write.
LAST_USED_EVERY = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id          TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    key_hash    TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    scopes      TEXT,
    created_at  REAL NOT NULL,
    expires_at  REAL,
    last_used   REAL,
    creator_ua  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user);
"""
#: Where a key's user came from when the key was made; NULL (older keys) reads as htpasswd.
_SOURCE_COLUMN = "ALTER TABLE api_keys ADD COLUMN source TEXT"
_COLUMNS = "id, user, label, scopes, created_at, expires_at, last_used, creator_ua, source"


@dataclass(frozen=True)
class ApiKey:
    """What is known about a key; never the key itself."""

    id: str
    user: str
    label: str
    scopes: tuple[str, ...] | None
    created_at: float
    expires_at: float | None
    last_used: float | None
    creator_ua: str
    #: The identity source the user logged in with to create the key.
    source: str = "htpasswd"

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or time.time())


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(
    user: str,
    label: str,
    scopes: list[str] | None,
    expires_at: float | None,
    creator_ua: str,
    source: str,
) -> tuple[str, ApiKey]:
    """A fresh secret and its record: what every store keeps, minus the secret itself."""
    secret = PREFIX + secrets.token_hex(20)
    record = ApiKey(
        id=str(uuid.uuid4()),
        user=user,
        label=label,
        scopes=tuple(scopes) if scopes else None,
        created_at=time.time(),
        expires_at=expires_at,
        last_used=None,
        creator_ua=creator_ua,
        source=source,
    )
    return secret, record


def usable(record: ApiKey | None, user: str) -> ApiKey | None:
    """``record`` when it belongs to ``user`` and has not expired, else None."""
    if record is None:
        return None
    if not hmac.compare_digest(record.user.encode(), user.encode()) or record.expired():
        return None
    return record


class KeyStore(Protocol):
    """What the authenticator, the key endpoints and the purge need of a key store.

    Two implement it: :class:`ApiKeyStore` (SQLite under the local root: one machine,
    its worker processes) and ``apikey_bucket.BucketKeyStore`` (an object per key in the
    bucket, for replicas that share nothing but the bucket and Redis). Every method but
    :meth:`verify` blocks: callers run them in a thread.
    """

    def create(
        self,
        user: str,
        label: str,
        scopes: list[str] | None,
        expires_at: float | None,
        creator_ua: str,
        source: str = "htpasswd",
    ) -> tuple[str, ApiKey]: ...

    async def verify(self, user: str, secret: str) -> ApiKey | None:
        """The key's record when ``secret`` is a live key of ``user``, else None; a
        coroutine, since it runs on every request made with a key: it never blocks the
        event loop (SQLite: in a thread; the bucket's store: one Redis GET)."""

    def list(self, user: str) -> list[ApiKey]: ...

    def revoke(self, user: str, key_id: str) -> bool: ...

    def users(self, source: str) -> set[str]: ...

    def purge(self, now: float, gone: set[str], source: str) -> int: ...

    def close(self) -> None: ...


class ApiKeyStore:
    """Keys in SQLite under a storage root; safe to call from any thread."""

    def __init__(self, root: Path) -> None:
        self.path = root / DB_DIR / DB_FILE
        # durable: a key shown to its user must still exist after a crash, and a revoked
        # one must stay revoked.
        self._shared = SharedDB(self.path, _SCHEMA, durable=True)
        self._db, self._lock = self._shared.conn, self._shared.lock
        self._touched: dict[str, float] = {}
        with self._tx() as db:
            columns = {row[1] for row in db.execute("PRAGMA table_info(api_keys)")}
            if "source" not in columns:
                db.execute(_SOURCE_COLUMN)

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._shared.tx()

    def create(
        self,
        user: str,
        label: str,
        scopes: list[str] | None,
        expires_at: float | None,
        creator_ua: str,
        source: str = "htpasswd",
    ) -> tuple[str, ApiKey]:
        """A new key for ``user``: the secret (to show once) and its record."""
        secret, record = new_key(user, label, scopes, expires_at, creator_ua, source)
        with self._tx() as db:
            db.execute(
                "INSERT INTO api_keys (id, user, key_hash, label, scopes, created_at,"
                " expires_at, last_used, creator_ua, source)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    user,
                    hash_key(secret),
                    label,
                    json.dumps(list(record.scopes)) if record.scopes else None,
                    record.created_at,
                    expires_at,
                    None,
                    creator_ua,
                    source,
                ),
            )
        return secret, record

    def authenticate(self, user: str, secret: str) -> ApiKey | None:
        """The key's record when ``secret`` is a live key of ``user``, else None."""
        if not secret.startswith(PREFIX):
            return None
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE key_hash = ?",
                (hash_key(secret),),
            ).fetchone()
        record = usable(None if row is None else _record(row), user)
        if record is None:
            return None
        self._touch(record.id)
        return record

    async def verify(self, user: str, secret: str) -> ApiKey | None:
        return await asyncio.to_thread(self.authenticate, user, secret)

    def _touch(self, key_id: str) -> None:
        now = time.time()
        if now - self._touched.get(key_id, 0.0) < LAST_USED_EVERY:
            return
        self._touched[key_id] = now
        with self._tx() as db:
            db.execute("UPDATE api_keys SET last_used = ? WHERE id = ?", (now, key_id))

    def list(self, user: str) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM api_keys WHERE user = ? ORDER BY created_at",
                (user,),
            ).fetchall()
        return [_record(row) for row in rows]

    def revoke(self, user: str, key_id: str) -> bool:
        """Delete one of ``user``'s keys; False when ``user`` has no key with that id."""
        with self._tx() as db:
            cursor = db.execute("DELETE FROM api_keys WHERE id = ? AND user = ?", (key_id, user))
        self._touched.pop(key_id, None)
        return cursor.rowcount > 0

    def users(self, source: str) -> set[str]:
        """The users holding keys made through ``source`` (older keys count as htpasswd)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT user FROM api_keys WHERE coalesce(source, 'htpasswd') = ?",
                (source,),
            ).fetchall()
        return {str(row[0]) for row in rows}

    def purge(self, now: float, gone: set[str], source: str) -> int:
        """Delete expired keys, and ``source`` keys of the ``gone`` users; how many."""
        with self._tx() as db:
            cursor = db.execute(
                "DELETE FROM api_keys WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,)
            )
            deleted = cursor.rowcount
            for user in sorted(gone):
                cursor = db.execute(
                    "DELETE FROM api_keys WHERE user = ? AND coalesce(source, 'htpasswd') = ?",
                    (user, source),
                )
                deleted += cursor.rowcount
        return deleted

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _record(row: tuple[object, ...]) -> ApiKey:
    key_id, user, label, scopes, created, expires, last_used, ua, source = row
    return ApiKey(
        id=str(key_id),
        user=str(user),
        label=str(label),
        scopes=tuple(json.loads(str(scopes))) if scopes else None,
        created_at=float(created),  # type: ignore[arg-type]
        expires_at=None if expires is None else float(expires),  # type: ignore[arg-type]
        last_used=None if last_used is None else float(last_used),  # type: ignore[arg-type]
        creator_ua=str(ua),
        source=str(source) if source else "htpasswd",
    )
