"""A small SQLite database file shared by the threads of the server.

The dedupe map, the verified stamps and the API keys each keep one: WAL so readers never
wait for a writer, one connection serialized by a lock so any thread may call. The file
is created 0600 in a 0700 folder (see :mod:`dockyard.private`); SQLite gives the -wal and
-shm files the database's mode.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.private import private_database


class SharedDB:
    """One connection to ``path``, created with ``schema``, safe to use from any thread."""

    def __init__(self, path: Path | None, schema: str, *, durable: bool = False) -> None:
        """``path`` None keeps the database in memory: nothing is written to disk."""
        if path is not None:
            private_database(path)
        self.conn = sqlite3.connect(
            ":memory:" if path is None else path, check_same_thread=False, timeout=30
        )
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            # FULL syncs every commit (what must survive power loss: API keys); NORMAL may
            # lose the last commits on power loss, fine for caches that repair themselves.
            self.conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            self.conn.executescript(schema)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            # Name the file: "file is not a database" alone does not say which one.
            raise sqlite3.DatabaseError(f"{path}: {exc}") from exc
        self.lock = threading.Lock()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction, committed on success and rolled back on error."""
        with self.lock, self.conn:
            yield self.conn

    def close(self) -> None:
        with self.lock:
            self.conn.close()
