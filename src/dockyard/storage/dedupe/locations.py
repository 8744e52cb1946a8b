"""A durable map digest -> the blob files holding it, in SQLite under the root.

Paths are stored relative to the root, so a root can be stopped, moved and served from its
new place with dedupe intact. The map is a hint, never the truth: a record whose file has
vanished is dropped when found, and the filesystem decides what exists. A digest has no
key of its own: it is known exactly while some record names it, so its last reference
going takes the key with it.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from dockyard.dbfile import SharedDB
from dockyard.storage.paths import dedupe_db

_SCHEMA = """
CREATE TABLE IF NOT EXISTS blob_paths (
    digest TEXT NOT NULL,
    path   TEXT NOT NULL,
    PRIMARY KEY (digest, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class LocationMap(Protocol):
    """What dedupe needs of the map, wherever it lives: SQLite under a local root
    (:class:`BlobLocations`), or Redis shared by replicas (``redis_locations``)."""

    root: Path

    def add(self, digest: str, path: Path) -> None: ...

    def remove(self, digest: str, path: Path) -> None: ...

    def remove_many(self, records: list[tuple[str, str]]) -> None:
        """Drop many (digest, path relative to the root) records at once (a GC pass)."""

    def paths(self, digest: str) -> list[Path]:
        """The recorded names of ``digest``, in path order (possibly stale)."""

    def has_digest(self, digest: str) -> bool: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def close(self) -> None: ...


class BlobLocations:
    """Digest -> relative paths, safe to call from any thread."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Not durable: a hint that repairs itself (a lost record means one missed dedupe).
        self._shared = SharedDB(dedupe_db(root), _SCHEMA)
        self._db, self._lock = self._shared.conn, self._shared.lock

    def _tx(self) -> AbstractContextManager[sqlite3.Connection]:
        return self._shared.tx()

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add(self, digest: str, path: Path) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR IGNORE INTO blob_paths (digest, path) VALUES (?, ?)",
                (digest, self.relative(path)),
            )

    def remove(self, digest: str, path: Path) -> None:
        with self._tx() as db:
            db.execute(
                "DELETE FROM blob_paths WHERE digest = ? AND path = ?",
                (digest, self.relative(path)),
            )

    def remove_many(self, records: list[tuple[str, str]]) -> None:
        """Drop many (digest, relative path) records in one transaction (a GC pass)."""
        with self._tx() as db:
            db.executemany("DELETE FROM blob_paths WHERE digest = ? AND path = ?", records)

    def paths(self, digest: str) -> list[Path]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path FROM blob_paths WHERE digest = ? ORDER BY path", (digest,)
            ).fetchall()
        return [self.root / row[0] for row in rows]

    def has_digest(self, digest: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM blob_paths WHERE digest = ? LIMIT 1", (digest,)
            ).fetchone()
        return row is not None

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
