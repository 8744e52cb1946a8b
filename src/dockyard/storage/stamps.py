"""Verified stamps: which blob files were hashed and found to match their digest.

Re-hashing a blob on every GET would cost a full read per pull. Instead, when a file's
bytes have been hashed (the upload path hashes them as they stream in; a first read or a
scrub hashes the rest) its inode's (size, mtime) is recorded here with the digest. A GET
compares the file's stat with the stamp: equal means the file was not rewritten, truncated
or replaced since it was checked, so it is served; anything else means it is hashed again
before a byte goes out.

Keyed by inode, not path: with dedupe every repository's link to a blob is the same inode,
so one check covers them all, and a root moved to another filesystem (new inodes) is simply
checked again. The digest is part of the match, so a reused inode number never passes for
the file that had it before. Bit rot that leaves size and mtime alone is what ``scrub``
is for. Stamps live in ``ROOT/_dockyard/verified.db`` (SQLite, WAL), apart from the dedupe
map, which does not exist when dedupe is off. A lost stamp costs one re-hash, never a
wrong answer, so write failures are logged, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from pathlib import Path

from dockyard.dbfile import SharedDB
from dockyard.storage.paths import stamps_db

log = logging.getLogger("dockyard.integrity")

#: Stamps kept in memory besides SQLite; the hot blobs of a busy registry fit easily.
_MEMORY_ENTRIES = 65536

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verified (
    ino      INTEGER PRIMARY KEY,
    digest   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL
);
"""

Stamp = tuple[str, int, int]  # digest, size, mtime_ns


def stamp_of(st: os.stat_result, digest: str) -> Stamp:
    return (digest, st.st_size, st.st_mtime_ns)


class VerifiedStamps:
    """inode -> (digest, size, mtime_ns) of files whose bytes hashed to that digest."""

    def __init__(self, root: Path, *, in_memory: bool = False) -> None:
        """``in_memory``: nothing is written under ``root`` (a read-only look at it)."""
        shared = SharedDB(None if in_memory else stamps_db(root), _SCHEMA)
        self._db, self._lock = shared.conn, shared.lock
        self._memory: dict[int, Stamp] = {}

    def _remember(self, ino: int, stamp: Stamp) -> None:
        if len(self._memory) >= _MEMORY_ENTRIES:
            self._memory.clear()
        self._memory[ino] = stamp

    async def matches_soon(self, st: os.stat_result, digest: str) -> bool:
        """:meth:`matches` for the event loop: from memory, or from the database in a
        thread (its query may wait for a thread's commit holding the lock)."""
        known = self._memory.get(st.st_ino)
        if known is None:
            return await asyncio.to_thread(self.matches, st, digest)
        return known == stamp_of(st, digest)

    def matches(self, st: os.stat_result, digest: str) -> bool:
        """True when this inode was verified as ``digest`` and has not changed since."""
        want = stamp_of(st, digest)
        known = self._memory.get(st.st_ino)
        if known is None:
            with self._lock:
                row = self._db.execute(
                    "SELECT digest, size, mtime_ns FROM verified WHERE ino = ?", (st.st_ino,)
                ).fetchone()
            if row is None:
                return False
            known = (str(row[0]), int(row[1]), int(row[2]))
            self._remember(st.st_ino, known)
        return known == want

    def record(self, st: os.stat_result, digest: str) -> None:
        """The file at this stat was just hashed and matched ``digest``."""
        stamp = stamp_of(st, digest)
        self._remember(st.st_ino, stamp)
        try:
            with self._lock, self._db:
                self._db.execute(
                    "INSERT OR REPLACE INTO verified (ino, digest, size, mtime_ns) "
                    "VALUES (?, ?, ?, ?)",
                    (st.st_ino, *stamp),
                )
        except sqlite3.Error as exc:
            log.warning("could not record a verified stamp (it will be re-hashed): %s", exc)

    def forget(self, ino: int) -> None:
        self._memory.pop(ino, None)
        try:
            with self._lock, self._db:
                self._db.execute("DELETE FROM verified WHERE ino = ?", (ino,))
        except sqlite3.Error as exc:
            log.warning("could not drop a verified stamp: %s", exc)

    def forget_many(self, keys: list[tuple[int, str]]) -> None:
        """Drop the stamps of these (inode, digest): files whose last link is gone.

        The digest must match too, so an inode number reused by a newer file since keeps
        that file's stamp. Blocking: call it in a thread.
        """
        for ino, digest in keys:
            known = self._memory.get(ino)
            if known is not None and known[0] == digest:
                del self._memory[ino]
        try:
            with self._lock, self._db:
                self._db.executemany("DELETE FROM verified WHERE ino = ? AND digest = ?", keys)
        except sqlite3.Error as exc:
            log.warning("could not drop verified stamps: %s", exc)

    def prune(self, live: set[int]) -> int:
        """Drop the stamps of every inode not in ``live`` (files deleted since); return how many."""
        try:
            with self._lock:
                known = [row[0] for row in self._db.execute("SELECT ino FROM verified")]
            stale = [(ino,) for ino in known if ino not in live]
            with self._lock, self._db:
                self._db.executemany("DELETE FROM verified WHERE ino = ?", stale)
        except sqlite3.Error as exc:
            log.warning("could not prune verified stamps: %s", exc)
            return 0
        for (ino,) in stale:
            self._memory.pop(ino, None)
        return len(stale)

    def close(self) -> None:
        with self._lock:
            self._db.close()
