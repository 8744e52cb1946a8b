"""Locks keyed by name (a repository, a digest), so unrelated work never waits.

A single store-wide lock is what makes zot stall every repository while it walks one
(zot #2964, #4349); here each repository has its own, taken only to publish.

With worker processes (``http.workers``) a lock must hold across processes too. Each
key is then an asyncio lock first (the waiters of one process queue on it, in order)
and then an ``flock`` on a lock file of its own under the root's private folder. The
``flock`` is taken by non-blocking polling, so the event loop never blocks and a
cancelled waiter leaves nothing behind; it is released when its file descriptor closes,
so a worker killed with ``-9`` releases its locks with it. Lock files are never
deleted: removing one while another process waits on it would let two holders in.
flock is local to one machine, like the rest of the local backend's storage root;
replicas on several machines use the Redis locks of ``storage/shared/redis_locks.py``
instead (both are ``coordination.KeyLocks``).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from dockyard.storage.paths import lock_path

#: First and longest pause between two tries of a contended flock.
_FIRST_PAUSE = 0.0005
_LONGEST_PAUSE = 0.02


def try_flock(fd: int, shared: bool = False) -> bool:
    """Take an flock on ``fd`` without waiting; False when another holder has it."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


async def flock(fd: int) -> None:
    """Take an exclusive flock on ``fd``, polling so the event loop never blocks."""
    pause = _FIRST_PAUSE
    while not try_flock(fd):
        await asyncio.sleep(pause)
        pause = min(pause * 2, _LONGEST_PAUSE)


def open_lock_file(path: Path) -> int:
    """A descriptor of ``path``, created (0600) if missing; small and local: no thread."""
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)


class _Held:
    """A local lock needs no fencing: the kernel releases an ``flock`` only with its
    holder's process, so a live holder cannot have lost it."""

    async def fence(self) -> None:
        return None


_HELD = _Held()


class KeyedLocks:
    """One asyncio lock per key, dropped again once nobody holds or waits for it; with
    ``root``, each is also an flock that other processes serving the root respect."""

    def __init__(self, root: Path | None = None) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}
        #: The storage root whose private folder holds the lock files; None: this
        #: process is the only one (a single worker, ``gc --dry-run``).
        self.root = root
        #: Told how long each acquisition waited (metrics); None costs nothing.
        self.on_wait: Callable[[float], None] | None = None

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[_Held]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            started = time.perf_counter()
            async with lock:
                fd = None
                if self.root is not None:
                    fd = open_lock_file(lock_path(self.root, key))
                try:
                    if fd is not None:
                        await flock(fd)
                    if self.on_wait is not None:
                        self.on_wait(time.perf_counter() - started)
                    yield _HELD
                finally:
                    if fd is not None:
                        os.close(fd)  # releases the flock
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


class FileLock:
    """An exclusive lock on one existing file (an upload session's), across processes:
    an asyncio lock for the waiters of this process, then an flock of the file itself.

    The file can be renamed away (published) or unlinked (cancelled, collected) by
    another process while this one waits: :meth:`acquire` then answers None, so the
    caller treats the file as gone rather than writing to a file nobody will read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = asyncio.Lock()
        self._fd: int | None = None

    def locked(self) -> bool:
        """True while a request of this process holds (or takes) the lock."""
        return self._lock.locked()

    async def acquire(self) -> os.stat_result | None:
        """Lock; the locked file's stat, or None (and not locked) when it is gone."""
        await self._lock.acquire()
        fd = None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            await flock(fd)
            held = os.fstat(fd)
            now = os.stat(self.path)
            if (now.st_ino, now.st_dev) != (held.st_ino, held.st_dev) or held.st_nlink == 0:
                raise FileNotFoundError(self.path)
        except FileNotFoundError:
            if fd is not None:
                os.close(fd)
            self._lock.release()
            return None
        except BaseException:
            if fd is not None:
                os.close(fd)
            self._lock.release()
            raise
        self._fd = fd
        return held

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        self._lock.release()


def locked_elsewhere(path: Path) -> bool:
    """True when some process (this one included) holds ``path``'s :class:`FileLock`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return not try_flock(fd, shared=True)
    finally:
        os.close(fd)
