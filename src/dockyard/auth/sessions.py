"""Browser sessions of the web UI: a random id in an HttpOnly cookie, never a password.

A session is created by logging in with a password (``POST /ui/session``) and lives in
this process's memory only: a restart logs everyone out. It carries its own CSRF token,
which every write made with the cookie must echo in the ``X-Dockyard-CSRF`` header: a
page on another site can make the browser send the cookie (it cannot with SameSite=Strict
in current browsers, but older ones exist), never read the token.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass

from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.identity import Identity

COOKIE = "dockyard_session"
CSRF_HEADER = "X-Dockyard-CSRF"
#: Idle time after which a session ends.
IDLE_SECONDS = 12 * 3600.0
_MAX_SESSIONS = 10_000


@dataclass
class Session:
    identity: Identity
    csrf: str
    last_seen: float
    #: The user's htpasswd hash at login: the session ends when it changes.
    credential: bytes | None = None

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Session id -> session; expired ones are dropped when seen or when the map is full."""

    def __init__(self, idle: float = IDLE_SECONDS) -> None:
        self.idle = idle
        self._by_id: dict[str, Session] = {}

    def create(self, identity: Identity, credential: bytes | None = None) -> tuple[str, Session]:
        if len(self._by_id) >= _MAX_SESSIONS:
            self._expire()
            if len(self._by_id) >= _MAX_SESSIONS:  # still full: drop the oldest
                oldest = min(self._by_id, key=lambda k: self._by_id[k].last_seen)
                del self._by_id[oldest]
        sid = secrets.token_urlsafe(32)
        session = Session(identity, secrets.token_urlsafe(32), time.monotonic(), credential)
        self._by_id[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        session = self._by_id.get(sid)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.idle:
            del self._by_id[sid]
            return None
        session.last_seen = now
        return session

    def current(self, sid: str | None, htpasswd: Htpasswd | None) -> Session | None:
        """The live session of this cookie value, if its user's password is unchanged.

        A new password or a deleted user (the htpasswd file is re-read when it changes)
        ends every session opened with the old one.
        """
        session = self.get(sid)
        if session is None:
            return None
        user = session.identity.user
        if user is None or htpasswd is None or htpasswd.entry(user) != session.credential:
            self.end(sid)
            return None
        return session

    def end(self, sid: str | None) -> None:
        if sid:
            self._by_id.pop(sid, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [k for k, s in self._by_id.items() if now - s.last_seen > self.idle]:
            del self._by_id[sid]
