"""An upload session's identity, owner and cross-process lock (see ``uploads``).

The lock is an flock of the session file (or, on object storage, of a local lock file
standing for it), or a shared (Redis) lock for replicas on one bucket; on entry it reads
the session's size from storage, since whichever process appended last, the stored
bytes are the offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Literal

from dockyard.oci.digest import Hasher, new_hasher
from dockyard.storage.backend import StorageBackend
from dockyard.storage.coordination import KeyLocks
from dockyard.storage.errors import BlobUploadUnknown
from dockyard.storage.localfs import LOCAL
from dockyard.storage.locks import FileLock


class _Mark(Enum):
    ANYONE = "anyone"
    UNREADABLE = "unreadable"


#: The caller to name when access is not controlled: every session is every caller's.
ANYONE: Literal[_Mark.ANYONE] = _Mark.ANYONE
#: The owner of a session whose owner record cannot be read: it is nobody's (fail closed).
UNREADABLE: Literal[_Mark.UNREADABLE] = _Mark.UNREADABLE

#: Who opened a session: a name, or None for an anonymous client.
Owner = str | None
#: What a session records: an owner, or UNREADABLE.
SessionOwner = Owner | Literal[_Mark.UNREADABLE]
#: Who asks for a session: an owner, or ANYONE.
Caller = Owner | Literal[_Mark.ANYONE]


def may_use(owner: SessionOwner, caller: Caller) -> bool:
    return caller is ANYONE or owner == caller


@dataclass
class Session:
    """One upload in progress: its file, how many bytes it holds, and the hash of the
    first ``hashed`` of them (all of them, unless another worker appended)."""

    repo: str
    id: str
    path: Path
    size: int
    hasher: Hasher
    touched: float = field(default_factory=time.time)
    owner: SessionOwner = None
    hashed: int = 0
    #: On object storage: the local file whose flock stands for the session's, and the
    #: backend its size is read from. None: the session file itself is flocked.
    lock_file: Path | None = None
    backend: StorageBackend | None = field(default=None, repr=False)
    #: Locks shared by the replicas (Redis): the session's lock is taken there, not on
    #: a local file. None: an flock (this machine's worker processes).
    shared: KeyLocks | None = field(default=None, repr=False)
    lock: SessionLock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.lock = SessionLock(self)


class SessionLock:
    """``async with session.lock``: the session's cross-process lock. On entry the
    session's size is read from its file (another worker may have appended); a session
    whose file went meanwhile (published, cancelled, collected) is BlobUploadUnknown."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._file = FileLock(session.lock_file or session.path)
        #: While the shared lock is held: what releases it.
        self._shared: contextlib.AsyncExitStack | None = None

    def locked(self) -> bool:
        return self._shared is not None or self._file.locked()

    async def __aenter__(self) -> None:
        session = self.session
        unknown = BlobUploadUnknown(f"upload {session.id!r} is unknown", {"session": session.id})
        if session.shared is not None:
            await self._enter_shared(session, unknown)
            return
        if session.lock_file is not None:
            ensure_lock_file(session.lock_file)
        held = await self._file.acquire()
        if held is None:
            raise unknown
        if session.backend is not None:
            try:
                stored = await asyncio.to_thread(session.backend.stat, session.path)
            except BaseException:
                self._file.release()
                raise
            if stored is None:
                self._file.release()
                raise unknown
            held = stored
        self._sized(held.st_size)

    async def _enter_shared(self, session: Session, unknown: BlobUploadUnknown) -> None:
        """Take the session's lock in the shared service, then read its size from the
        backend: whichever replica appended last, the stored state is the offset."""
        assert session.shared is not None and session.backend is not None
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(session.shared.hold(upload_lock_key(session)))
        try:
            stored = await asyncio.to_thread(session.backend.stat, session.path)
        except BaseException:
            await stack.aclose()
            raise
        if stored is None:
            await stack.aclose()
            raise unknown
        self._shared = stack
        self._sized(stored.st_size)

    def _sized(self, size: int) -> None:
        session = self.session
        session.size = size
        if session.hashed > session.size:  # never expected: the file only grows
            session.hasher, session.hashed = new_hasher(), 0

    async def __aexit__(self, *exc: object) -> None:
        stack, self._shared = self._shared, None
        if stack is not None:
            await stack.aclose()
            return
        self._file.release()


def upload_lock_key(session: Session) -> str:
    """The name of a session's lock among the shared locks (a repository's is its name,
    which never contains a space)."""
    return f"upload {session.repo} {session.id}"


def ensure_lock_file(path: Path) -> None:
    """Make sure a remote session's lock file exists (small and local: no thread)."""
    with contextlib.suppress(FileExistsError):
        LOCAL.create(path)
