"""An htpasswd file of bcrypt entries: checked fast, re-read when it changes.

bcrypt is slow on purpose (50-250 ms a check), so a ``docker pull`` of 20 layers must not
pay it 20 times: a successful check is remembered for a short while, keyed by a salted
hash of (user, password), and checks of the same pair already running are shared. The
checks run in a small pool of threads of their own (:mod:`dockyard.auth.checkpool`),
never on the event loop nor in the storage threads. A user the file does not name is still
checked against a dummy hash, so the time taken does not tell which names exist.

The file is stat'ed on each login attempt (a microsecond) and re-read when its mtime,
size or inode changed, so ``dockyard passwd`` or ``htpasswd -B`` take effect without a
restart; the cache is dropped whenever the file changes, so a changed or removed
password stops working at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
import tempfile
import time
from pathlib import Path

import bcrypt

from dockyard.auth.checkpool import PasswordPool
from dockyard.auth.failures import Admit, Throttled
from dockyard.util.plural import count

log = logging.getLogger("dockyard.auth")

#: How long a successful check is trusted without bcrypt again.
CACHE_SECONDS = 60.0
#: How long a pair that passed stays allowed a bcrypt check from a client address that
#: is over its failed-login limit (see :mod:`dockyard.auth.failures`).
VOUCH_SECONDS = 3600.0
_CACHE_LIMIT = 4096
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
DEFAULT_COST = 10


def parse_htpasswd(text: str, source: str = "htpasswd") -> dict[str, bytes]:
    """``user -> bcrypt hash`` from htpasswd text; entries of other formats are skipped."""
    entries: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user:
            log.warning("%s line %d is not user:hash; ignored", source, number)
            continue
        if not hashed.startswith(_BCRYPT_PREFIXES):
            log.warning("%s: user %r has a non-bcrypt hash; ignored (use -B)", source, user)
            continue
        entries[user] = hashed.encode()
    return entries


def _cost(hashed: bytes) -> int | None:
    """The cost of a ``$2y$10$...`` hash; None when it is malformed (or out of range)."""
    try:
        cost = int(hashed.split(b"$")[2])
    except (IndexError, ValueError):
        return None
    return cost if 4 <= cost <= 31 else None


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash in the file
        return False


class Htpasswd:
    """The entries of one htpasswd file, verified with a short-lived success cache."""

    def __init__(self, path: Path, pool: PasswordPool | None = None) -> None:
        self.path = path
        self.pool = pool or PasswordPool()
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, bytes] = {}
        self._salt = secrets.token_bytes(16)
        self._cache: dict[bytes, float] = {}
        self._vouched: dict[bytes, float] = {}
        self._inflight: dict[bytes, asyncio.Future[bool]] = {}
        self._dummy: bytes | None = None
        self.reload()

    def reload(self) -> bool:
        """Re-read the file if it changed; True when it did. A vanished file keeps the
        entries last read (and says so), rather than locking everyone out mid-edit."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            if self._stamp is not None:
                log.warning("cannot stat %s (%s); keeping its last entries", self.path, exc)
                self._stamp = None
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        try:
            text = self.path.read_text()
        except OSError as exc:
            log.warning("cannot read %s (%s); keeping its last entries", self.path, exc)
            return False
        self._entries = parse_htpasswd(text, str(self.path))
        self._stamp = stamp
        self._cache.clear()
        self._vouched.clear()
        self._dummy = None
        log.info("loaded %s from %s", count(len(self._entries), "user"), self.path)
        return True

    def users(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, user: str) -> bytes | None:
        """The user's current hash (the file is re-read if it changed); None if absent.

        Browser sessions remember it at login and end when it changes: a new password or
        a deleted user logs the sessions out.
        """
        self.reload()
        return self._entries.get(user)

    def _key(self, user: str, password: str) -> bytes:
        material = user.encode() + b"\0" + password.encode()
        return hashlib.sha256(self._salt + material).digest()

    def _dummy_hash(self) -> bytes:
        """A hash to check unknown users against, at the highest cost in the file.

        The highest, not the first: with a cheap entry first and a dear one later, an
        unknown name would answer faster than a known one and so reveal which exist.
        """
        if self._dummy is None:
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(self.max_cost()))
        return self._dummy

    def max_cost(self) -> int:
        """The highest bcrypt cost among the entries (:data:`DEFAULT_COST` for none)."""
        costs = [_cost(hashed) for hashed in self._entries.values()]
        return max((c for c in costs if c is not None), default=DEFAULT_COST)

    def has_user(self, user: str) -> bool:
        """Whether the file (re-read if it changed) names ``user``."""
        self.reload()
        return user in self._entries

    def _vouched_for(self, key: bytes) -> bool:
        """Whether this pair passed a check less than :data:`VOUCH_SECONDS` ago (and the
        file has not changed since): a guess never has."""
        expiry = self._vouched.get(key)
        return expiry is not None and expiry > time.monotonic()

    async def verify(self, user: str, password: str, admit: Admit | None = None) -> bool:
        """Whether ``password`` is ``user``'s; bcrypt runs in a thread, at most once per
        (user, password) per :data:`CACHE_SECONDS` and per file version.

        A check that has to start asks ``admit`` first (the failed-login limit), unless
        the pair passed within :data:`VOUCH_SECONDS`; a no raises :class:`Throttled`.
        Answers from the cache, and joining a check already running, ask nothing."""
        self.reload()
        key = self._key(user, password)
        expiry = self._cache.get(key)
        if expiry is not None and expiry > time.monotonic():
            return True
        task = self._inflight.get(key)
        if task is None:
            if admit is not None and not self._vouched_for(key) and not admit():
                raise Throttled()
            # Its own task: one caller going away must not cancel the others' check.
            task = asyncio.ensure_future(self._check_and_remember(key, user, password))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        return await asyncio.shield(task)

    async def _check_and_remember(self, key: bytes, user: str, password: str) -> bool:
        version = self._stamp
        ok = await self._check(user, password)
        if ok and version == self._stamp:  # not if the file changed meanwhile
            now = time.monotonic()
            self._cache = _remember(self._cache, key, now, CACHE_SECONDS)
            self._vouched = _remember(self._vouched, key, now, VOUCH_SECONDS)
        return ok

    async def _check(self, user: str, password: str) -> bool:
        hashed = self._entries.get(user)
        if hashed is None:
            dummy = await self.pool.run(self._dummy_hash)
            await self.pool.run(_checkpw, password.encode(), dummy)
            return False
        return await self.pool.run(_checkpw, password.encode(), hashed)


def _remember(table: dict[bytes, float], key: bytes, now: float, ttl: float) -> dict[bytes, float]:
    """``table`` with ``key`` valid for ``ttl`` more seconds, expired entries (or, when
    all are live, every entry) dropped once it holds :data:`_CACHE_LIMIT`."""
    if len(table) >= _CACHE_LIMIT:
        table = {k: t for k, t in table.items() if t > now}
        if len(table) >= _CACHE_LIMIT:
            table = {}
    table[key] = now + ttl
    return table


def set_password(path: Path, user: str, password: str, cost: int = DEFAULT_COST) -> bool:
    """Add or update ``user`` in an htpasswd file; True when the user was new.

    The file is rewritten whole through a temporary file and a rename, so a server
    reading it never sees half of it; other lines are kept as they were.
    """
    if not user or ":" in user or any(c.isspace() for c in user):
        raise ValueError(f"user name {user!r} must be non-empty, without ':' or spaces")
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    return _rewrite(path, user, f"{user}:{hashed}")


def delete_user(path: Path, user: str) -> bool:
    """Remove ``user`` from an htpasswd file; False when it was not there."""
    if not path.exists():
        return False
    return not _rewrite(path, user, None)


def _rewrite(path: Path, user: str, entry: str | None) -> bool:
    """Replace (or drop, with None) ``user``'s line; True when no line named it."""
    lines = path.read_text().splitlines() if path.exists() else []
    out: list[str] = []
    new = True
    for line in lines:
        if line.partition(":")[0] == user and not line.startswith("#"):
            new = False
            if entry is not None:
                out.append(entry)
            continue
        out.append(line)
    if new and entry is not None:
        out.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in out))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return new
