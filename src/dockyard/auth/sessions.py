"""Browser sessions of the web UI: a random id in an HttpOnly cookie, never a password.

A session is created by logging in with a password (``POST /ui/session``) and is kept in
SQLite under the storage root's private folder (``_dockyard/sessions.db``), by the hash
of its id: every worker process finds it, whichever one the browser's next request
reaches, and a restart keeps it. The cookie's value is never stored, so the file alone
opens no session. It carries its own CSRF token,
which every write made with the cookie must echo in the ``X-Dockyard-CSRF`` header: a
page on another site can make the browser send the cookie (it cannot with SameSite=Strict
in current browsers, but older ones exist), never read the token.

That is one machine's store. Replicas that share only a bucket and a Redis keep their
sessions in Redis instead (:mod:`.redis_sessions`), with the same promises; both are a
:class:`SessionStore`, and the running process picks one (``app/auth_stores.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.identity import Identity
from dockyard.dbfile import SharedDB

COOKIE = "dockyard_session"
CSRF_HEADER = "X-Dockyard-CSRF"
#: The database file under the storage root.
DB_FILE = "sessions.db"
#: Idle time after which a session ends.
IDLE_SECONDS = 12 * 3600.0
#: Sessions kept at once: past it, the least recently used ends (logins in a loop).
MAX_SESSIONS = 10_000


_SCHEMA = """
CREATE TABLE IF NOT EXISTS ui_sessions (
    id_hash    TEXT PRIMARY KEY,
    user       TEXT NOT NULL,
    method     TEXT NOT NULL,
    groups     TEXT NOT NULL,
    csrf       TEXT NOT NULL,
    last_seen  REAL NOT NULL,
    credential BLOB
);
CREATE INDEX IF NOT EXISTS ui_sessions_seen ON ui_sessions (last_seen);
"""
#: ``last_seen`` is written at most this often per session, so a page view costs no write.
SEEN_EVERY = 60.0


@dataclass
class Session:
    identity: Identity
    csrf: str
    last_seen: float
    #: The user's htpasswd hash at login: the session ends when it changes.
    credential: bytes | None = None

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


def session_key(sid: str) -> str:
    """What a store keeps a session by: the hash of its id, never the id itself."""
    return hashlib.sha256(sid.encode()).hexdigest()


class SessionStore(Protocol):
    """What the login endpoints and the auth guard need of a session store.

    Every store keeps only the hash of a session's id, ends a session when its user's
    htpasswd hash changes (:meth:`current`), after :data:`IDLE_SECONDS` without a
    request, and writes ``last_seen`` at most every :data:`SEEN_EVERY`.
    """

    async def create(
        self, identity: Identity, credential: bytes | None = None
    ) -> tuple[str, Session]: ...

    async def get(self, sid: str | None) -> Session | None: ...

    async def current(self, sid: str | None, htpasswd: Htpasswd | None) -> Session | None:
        """The live session of this cookie value, if its user's password is unchanged."""

    async def end(self, sid: str | None) -> None: ...

    async def close(self) -> None: ...


class Sessions:
    """Session id -> session, in SQLite (``path``; None: in memory, this process only).
    Expired ones are dropped when seen or when the table is full.

    The methods are coroutines for :class:`SessionStore`'s sake, but run their one small
    SQLite statement inline, as they always did: a local WAL read costs less than a
    thread hop."""

    def __init__(self, path: Path | None = None, idle: float = IDLE_SECONDS) -> None:
        self.idle = idle
        self._db = SharedDB(path, _SCHEMA)

    async def create(
        self, identity: Identity, credential: bytes | None = None
    ) -> tuple[str, Session]:
        assert identity.user is not None, "only a logged-in user has a session"
        sid = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(identity, secrets.token_urlsafe(32), now, credential)
        with self._db.tx() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM ui_sessions").fetchone()
            if count >= MAX_SESSIONS:
                db.execute("DELETE FROM ui_sessions WHERE last_seen < ?", (now - self.idle,))
                (count,) = db.execute("SELECT COUNT(*) FROM ui_sessions").fetchone()
                if count >= MAX_SESSIONS:  # still full: drop the oldest
                    db.execute(
                        "DELETE FROM ui_sessions WHERE id_hash IN "
                        "(SELECT id_hash FROM ui_sessions ORDER BY last_seen LIMIT 1)"
                    )
            db.execute(
                "INSERT INTO ui_sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    session_key(sid),
                    identity.user,
                    identity.method,
                    json.dumps(sorted(identity.groups)),
                    session.csrf,
                    now,
                    credential,
                ),
            )
        return sid, session

    async def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        key = session_key(sid)
        with self._db.tx() as db:
            row = db.execute(
                "SELECT user, method, groups, csrf, last_seen, credential FROM ui_sessions "
                "WHERE id_hash = ?",
                (key,),
            ).fetchone()
            if row is None:
                return None
            user, method, groups, csrf, last_seen, credential = row
            now = time.time()
            if now - last_seen > self.idle:
                db.execute("DELETE FROM ui_sessions WHERE id_hash = ?", (key,))
                return None
            if now - last_seen > SEEN_EVERY:
                db.execute("UPDATE ui_sessions SET last_seen = ? WHERE id_hash = ?", (now, key))
        identity = Identity(user=user, method=method, groups=frozenset(json.loads(groups)))
        return Session(identity, csrf, now, credential)

    async def current(self, sid: str | None, htpasswd: Htpasswd | None) -> Session | None:
        """The live session of this cookie value, if its user's password is unchanged.

        A new password or a deleted user (the htpasswd file is re-read when it changes)
        ends every session opened with the old one.
        """
        session = await self.get(sid)
        if session is None:
            return None
        user = session.identity.user
        if user is None or htpasswd is None or htpasswd.entry(user) != session.credential:
            await self.end(sid)
            return None
        return session

    async def end(self, sid: str | None) -> None:
        if sid:
            with self._db.tx() as db:
                db.execute("DELETE FROM ui_sessions WHERE id_hash = ?", (session_key(sid),))

    async def close(self) -> None:
        self._db.close()
