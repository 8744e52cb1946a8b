"""An htpasswd file of bcrypt entries: checked fast, re-read when it changes.

bcrypt is slow on purpose (50-250 ms a check), so a ``docker pull`` of 20 layers must not
pay it 20 times: a successful check is remembered for a short while, keyed by a salted
hash of (user, password), and checks of the same pair already running are shared. The
checks run in a thread, never on the event loop. A user the file does not name is still
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

log = logging.getLogger("dockyard.auth")

#: How long a successful check is trusted without bcrypt again.
CACHE_SECONDS = 60.0
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


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a malformed hash in the file
        return False


class Htpasswd:
    """The entries of one htpasswd file, verified with a short-lived success cache."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._entries: dict[str, bytes] = {}
        self._salt = secrets.token_bytes(16)
        self._cache: dict[bytes, float] = {}
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
        self._dummy = None
        log.info("loaded %d users from %s", len(self._entries), self.path)
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
        """A hash of the file's cost to check unknown users against (same time taken)."""
        if self._dummy is None:
            cost = DEFAULT_COST
            for hashed in self._entries.values():
                try:
                    cost = int(hashed.split(b"$")[2])
                except (IndexError, ValueError):
                    continue
                break
            self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(cost))
        return self._dummy

    async def verify(self, user: str, password: str) -> bool:
        """Whether ``password`` is ``user``'s; bcrypt runs in a thread, at most once per
        (user, password) per :data:`CACHE_SECONDS` and per file version."""
        self.reload()
        key = self._key(user, password)
        expiry = self._cache.get(key)
        if expiry is not None and expiry > time.monotonic():
            return True
        task = self._inflight.get(key)
        if task is None:
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
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {k: t for k, t in self._cache.items() if t > now}
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
            self._cache[key] = now + CACHE_SECONDS
        return ok

    async def _check(self, user: str, password: str) -> bool:
        hashed = self._entries.get(user)
        if hashed is None:
            dummy = await asyncio.to_thread(self._dummy_hash)
            await asyncio.to_thread(_checkpw, password.encode(), dummy)
            return False
        return await asyncio.to_thread(_checkpw, password.encode(), hashed)


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
