"""Browser sessions of replicas that share a Redis: a login on one is a session on all.

Replicas on one bucket have no folder in common, so the SQLite file of one machine
(:class:`~dockyard.auth.sessions.Sessions`) would log a user out whenever the balancer
picks another replica. Here a session is one Redis hash,
``<namespace>:ui-session:<sha256 of the id>``, whose expiry is the idle time: Redis drops
an idle session by itself. As in SQLite, at most ``MAX_SESSIONS`` live at once: an
index (``<namespace>:ui-sessions``, a sorted set by last request) drops the idle ones
and, when full, the least recently used, so logins in a loop cannot fill Redis. The
promises are those of the SQLite store: only the hash of the id is kept (the cookie's
value opens nothing if Redis is read), the CSRF token lives beside it, ``last_seen``
(and the expiry) is written at most every :data:`~dockyard.auth.sessions.SEEN_EVERY`,
and a session ends when its user's htpasswd hash changes. Of that hash only a SHA-256
is kept, so Redis never holds a bcrypt hash to crack.

A session is not a durable fact: a ``FLUSHALL`` or a new empty Redis logs every browser
out, and its user logs in again (API keys and images are kept in the bucket). A Redis
that does not answer makes a request with a session cookie a 503, as every other request
of a replica is then.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from typing import TYPE_CHECKING

from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.identity import Identity
from dockyard.auth.sessions import IDLE_SECONDS, MAX_SESSIONS, SEEN_EVERY, Session, session_key
from dockyard.storage.shared.redis_client import unavailable

if TYPE_CHECKING:  # imported only with a cacheDriver: see redis_client.async_client
    import redis.asyncio

#: Move ``last_seen`` and the expiry of a session that still exists: a request that read
#: the session just before a logout elsewhere must not bring back a part of it.
_SEEN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'last_seen', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[3])
return 1
"""


def _fingerprint(credential: bytes | None) -> bytes:
    """What is kept of the htpasswd hash a session was opened with."""
    if credential is None:
        return b""
    return hashlib.sha256(credential).hexdigest().encode()


class RedisSessions:
    """Session id -> session, in the Redis every replica shares."""

    def __init__(
        self, client: redis.asyncio.Redis, namespace: str, idle: float = IDLE_SECONDS
    ) -> None:
        self.idle = idle
        self._redis = client
        self._prefix = f"{namespace}:ui-session:"
        self._index = f"{namespace}:ui-sessions"
        self._seen_script = client.register_script(_SEEN)

    def _name(self, sid: str) -> str:
        return self._prefix + session_key(sid)

    async def create(
        self, identity: Identity, credential: bytes | None = None
    ) -> tuple[str, Session]:
        assert identity.user is not None, "only a logged-in user has a session"
        sid = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(identity, secrets.token_urlsafe(32), now, _fingerprint(credential))
        fields = {
            "user": identity.user,
            "method": identity.method,
            "groups": json.dumps(sorted(identity.groups)),
            "csrf": session.csrf,
            "last_seen": repr(now),
            "credential": _fingerprint(credential),
        }
        member = session_key(sid)
        name = self._prefix + member
        with unavailable("the browser sessions"):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(name, mapping=fields)
                pipe.pexpire(name, int(self.idle * 1000))
                pipe.zremrangebyscore(self._index, "-inf", now - self.idle)
                pipe.zadd(self._index, {member: now})
                pipe.zcard(self._index)
                *_, count = await pipe.execute()
            if count > MAX_SESSIONS:  # full: the least recently used go first
                oldest = await self._redis.zpopmin(self._index, count - MAX_SESSIONS)
                await self._redis.delete(*(self._prefix + m.decode() for m, _ in oldest))
        return sid, session

    async def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        name = self._name(sid)
        with unavailable("the browser sessions"):
            fields: dict[bytes, bytes] = await self._redis.hgetall(name)  # type: ignore[misc]
        try:
            user = fields[b"user"].decode()
            method = fields[b"method"].decode()
            groups = frozenset(json.loads(fields[b"groups"]))
            csrf = fields[b"csrf"].decode()
            last_seen = float(fields[b"last_seen"])
            credential = fields.get(b"credential", b"")
        except (KeyError, ValueError):
            return None  # absent, or a remnant: no session
        now = time.time()
        if now - last_seen > self.idle:
            await self.end(sid)
            return None
        if now - last_seen > SEEN_EVERY:
            args: list[str | int] = [repr(now), int(self.idle * 1000), session_key(sid)]
            with unavailable("the browser sessions"):
                await self._seen_script(keys=[name, self._index], args=args)
        identity = Identity(user=user, method=method, groups=groups)
        return Session(identity, csrf, now, credential)

    async def current(self, sid: str | None, htpasswd: Htpasswd | None) -> Session | None:
        """The live session of this cookie value, if its user's password is unchanged."""
        session = await self.get(sid)
        if session is None:
            return None
        user = session.identity.user
        entry = htpasswd.entry(user) if htpasswd is not None and user is not None else None
        if entry is None or not hmac.compare_digest(_fingerprint(entry), session.credential or b""):
            await self.end(sid)
            return None
        return session

    async def end(self, sid: str | None) -> None:
        if sid:
            with unavailable("the browser sessions"):
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.delete(self._name(sid))
                    pipe.zrem(self._index, session_key(sid))
                    await pipe.execute()

    async def close(self) -> None:
        await self._redis.aclose()
