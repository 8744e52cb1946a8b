"""Upload sessions: private, lock-free files that bytes stream into while being hashed.

A session is ``ROOT/<repo>/.uploads/<uuid>``. Only its own client writes to it, so
appending takes no repository lock; a per-session lock (an flock of the session file, so
it holds across worker processes) only keeps two requests of the same client from
interleaving.

Any worker process takes any request of a session: the file is the truth. Under the
session lock its size is the session's offset, whoever appended last. The hash state in
memory is an optimisation: it covers a prefix of the file (``Session.hashed`` bytes), and
that prefix never changes, because under the lock a file only grows (a failed chunk is
truncated back to the size the lock was taken at, never below). So a worker hashes a
chunk as it streams only while its state covers the whole file; once another worker has
appended, it writes without hashing, and at the final PUT it hashes just the bytes its
state does not cover, read back from the file. Each byte is hashed at most once while
streaming and at most once at the PUT: under two passes, and one when a client keeps its
connection (one worker). A session this worker never saw (another worker opened it, or
the server restarted) starts with an empty state: nothing is hashed until it is needed.

On object storage (the backend has no local file for a session) the session's flock is
taken on a lock file of its own under the root's local private folder instead, and its
size is read from the backend once the lock is held; every call that is a network round
trip there (create, stat, open, rollback) runs in a thread, never on the event loop.

Replicas on one bucket do not share that local folder, so a root given shared locks
(Redis, ``cacheDriver``) takes the session's lock there instead (``upload <repo> <id>``,
with an expiry and renewal like a repository's): any replica may continue any session,
and two requests of one session never interleave, whichever replicas they reach. The
bucket's conditional write of the state object stays the last guard (a writer whose
lock lapsed gets ``ConcurrentAppend``, never a lost chunk).

A session belongs to whoever opened it. Its owner (an opaque name handed in by the API
layer) is kept in ``.uploads/.<uuid>.owner`` so that it survives a restart; a session of
an anonymous client has no such record. To anyone else the session does not exist.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

from dockyard.oci.digest import Digest, Hasher, new_hasher
from dockyard.storage.backend import Appender, StorageBackend
from dockyard.storage.coordination import KeyLocks
from dockyard.storage.errors import (
    BlobUploadInvalid,
    BlobUploadUnknown,
    RangeNotSatisfiable,
    StorageFull,
    is_disk_full,
)
from dockyard.storage.localfs import LOCAL
from dockyard.storage.locks import locked_elsewhere
from dockyard.storage.offload import run_blocking
from dockyard.storage.paths import lock_path, owner_record_path, pin_path, upload_path
from dockyard.storage.upload_pool import UploadPool
from dockyard.storage.upload_session import (
    ANYONE,
    UNREADABLE,
    Caller,
    Owner,
    Session,
    SessionOwner,
    may_use,
)

_SESSION_ID = re.compile(r"^[0-9a-f]{32}\Z")
#: Bytes gathered before one write+hash is handed to a thread: large enough that the
#: hand-off costs little, small enough that a hundred concurrent uploads (20 images of 5
#: layers pushed at once) hold tens of MiB, not hundreds (1 MiB batches: 285 MiB peak).
BATCH = 256 * 1024
#: How long an upload of a burst waits for its turn before it streams anyway (see
#: ``Uploads.append``).
ADMISSION_WAIT = 2.0


class _NoHash:
    """Stands in for the hash while this worker's state does not cover the file."""

    def update(self, data: bytes | bytearray) -> None:
        pass

    def copy(self) -> _NoHash:
        return self


def _write_owner(backend: StorageBackend, path: Path, owner: str) -> None:
    """Not fsynced: after a power cut an empty record makes the session nobody's, so the
    client starts its upload again; that is cheaper than an fsync per upload."""
    backend.write(path, json.dumps({"user": owner}).encode())


def _read_owner(backend: StorageBackend, session_path: Path) -> SessionOwner:
    try:
        doc = json.loads(backend.read_bytes(owner_record_path(session_path)))
    except FileNotFoundError:
        return None  # anonymous (or opened before owners were recorded)
    except (OSError, ValueError):
        return UNREADABLE
    user = doc.get("user") if isinstance(doc, dict) else None
    return user if isinstance(user, str) else UNREADABLE


def _unlink(backend: StorageBackend, path: Path) -> None:
    """The session file first, then its owner record: never an ownerless session file;
    then the stored copy a duplicate upload pinned, if it did (see ``duplicate_uploads``)."""
    for doomed in (path, owner_record_path(path), pin_path(path)):
        backend.delete(doomed)


def _write_and_hash(out: Appender, data: bytes | bytearray, hasher: Hasher | _NoHash) -> None:
    """Append ``data`` and fold it into the hash (both release the GIL on large buffers).

    One thread does both, one after the other: splitting them over two threads helped a
    lone upload but cost concurrent ones more on two cores (``dockyard bench``: pushes at
    concurrency 8 fell from ~1.5x docker-registry's rate to ~0.8x).
    """
    out.write(data)
    hasher.update(data)


def joined(pieces: list[bytes]) -> bytes:
    """One buffer for a write: a single piece as it is (a body read in large pieces, see
    ``web.bodies``, is never copied here), several joined."""
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class _Feeder:
    """Hands a streamed body to ``work`` in a thread, in batches of about ``BATCH`` bytes:
    one batch at work while the next is read from the network. ``fed`` counts the bytes
    handed over; :meth:`wait` waits for the batch still at work, which whatever ``work``
    uses (a file, a hasher) must outlive."""

    def __init__(self, threads: concurrent.futures.Executor, work: Callable[[bytes], None]) -> None:
        self.threads, self.work = threads, work
        self.pending: concurrent.futures.Future[None] | None = None
        self.fed = 0

    async def feed(self, body: AsyncIterator[bytes]) -> None:
        """Every batch of ``body`` handed over and done."""
        pieces: list[bytes] = []
        gathered = 0
        async for chunk in body:
            pieces.append(chunk)
            gathered += len(chunk)
            if gathered >= BATCH:
                await self._hand(pieces, gathered)
                pieces, gathered = [], 0
        if pieces:
            await self._hand(pieces, gathered)
        await _settled(self.pending)

    async def _hand(self, pieces: list[bytes], size: int) -> None:
        await _settled(self.pending)
        self.pending = self.threads.submit(self.work, joined(pieces))
        self.fed += size

    def wait(self) -> None:
        if self.pending is not None:
            concurrent.futures.wait([self.pending])


async def _settled(pending: concurrent.futures.Future[None] | None) -> None:
    """Wait for a batch's write; one already done (the usual case) raises its error, if
    any, without an asyncio future and a wake-up of the loop from the thread."""
    if pending is None:
        return
    if pending.done():
        pending.result()
    else:
        await asyncio.wrap_future(pending)


def _rehash(
    backend: StorageBackend,
    path: Path,
    algorithm: str = "sha256",
    hasher: Hasher | None = None,
    offset: int = 0,
) -> tuple[int, Hasher]:
    """Hash the file from ``offset`` on, into ``hasher`` (new when None); the bytes read."""
    hasher = new_hasher(algorithm) if hasher is None else hasher
    size = 0
    with backend.open_read(path, offset) as f:
        while chunk := f.read(BATCH):
            hasher.update(chunk)
            size += len(chunk)
    return size, hasher


def _load(backend: StorageBackend, path: Path, caller: Caller) -> tuple[SessionOwner, int] | None:
    """A session's owner and size from disk (another worker's session, or one from before
    a restart); None when it is absent or not ``caller``'s. Nothing is hashed here: the
    hash is caught up at the PUT, if this worker is the one that gets it."""
    owner = _read_owner(backend, path)
    if not may_use(owner, caller):
        return None
    try:
        st = backend.stat(path)
    except NotADirectoryError:
        return None
    return None if st is None else (owner, st.st_size)


class Uploads:
    """The upload sessions of one storage root."""

    def __init__(
        self,
        root: Path,
        backend: StorageBackend,
        pool: UploadPool,
        shared: KeyLocks | None = None,
    ) -> None:
        """``shared``: the locks the replicas share (Redis), used for session locks when
        the sessions are remote too; a local session keeps its flock."""
        self.root = root
        self.backend = backend
        self.pool = pool
        self._sessions: dict[tuple[str, str], Session] = {}
        #: Sessions are objects in a bucket, not local files (see the module's notes).
        self.remote = backend.local_file(root) is None
        self.shared = shared if self.remote else None

    def _path(self, repo: str, session_id: str) -> Path:
        return upload_path(self.root / repo, session_id)

    def _lock_file(self, repo: str, session_id: str) -> Path | None:
        """The local file a remote session's flock is taken on (None: a local session,
        or one locked through the shared locks)."""
        if not self.remote or self.shared is not None:
            return None
        return lock_path(self.root, f"upload {repo} {session_id}")

    def _session(self, repo: str, session_id: str, size: int, owner: SessionOwner) -> Session:
        return Session(
            repo,
            session_id,
            self._path(repo, session_id),
            size,
            new_hasher(),
            owner=owner,
            lock_file=self._lock_file(repo, session_id),
            backend=self.backend if self.remote else None,
            shared=self.shared,
        )

    def create(self, repo: str, owner: Owner = None) -> Session:
        """A new session of ``owner``; its owner record is written before the session file,
        so a session file never exists without it."""
        session_id = uuid.uuid4().hex
        path = self._path(repo, session_id)
        self.backend.make_dirs(path.parent)
        if owner is not None:
            _write_owner(self.backend, owner_record_path(path), owner)
        self.backend.create(path)
        session = self._session(repo, session_id, 0, owner)
        self._sessions[(repo, session_id)] = session
        return session

    async def get(self, repo: str, session_id: str, caller: Caller = ANYONE) -> Session:
        """The live session, rebuilt from its file after a restart; else BlobUploadUnknown.

        A session ``caller`` did not open is unknown too, exactly as one that never was:
        its id alone (which access logs show) gives nobody else a way in.
        """
        unknown = BlobUploadUnknown(f"upload {session_id!r} is unknown", {"session": session_id})
        if not _SESSION_ID.match(session_id):
            raise unknown
        session = self._sessions.get((repo, session_id))
        if session is None:
            path = self._path(repo, session_id)
            found = await asyncio.to_thread(_load, self.backend, path, caller)
            if found is None:
                raise unknown
            owner, size = found
            session = self._sessions.setdefault(
                (repo, session_id), self._session(repo, session_id, size, owner)
            )
        elif not session.lock.locked():
            # Another worker may have appended, published or cancelled since: one stat.
            st = await run_blocking(self.remote, self.backend.stat, session.path)
            if st is None:
                self._sessions.pop((repo, session_id), None)
                raise unknown
            session.size = st.st_size
        if not may_use(session.owner, caller):
            raise unknown
        return session

    async def append(
        self,
        session: Session,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
        *,
        durable: bool = True,
    ) -> int:
        """Stream ``body`` onto the session; a burst streams ``STREAMING`` uploads at a time.

        ``durable=False`` for the body of a closing PUT: nothing is acknowledged before
        its publish, which makes the file durable only if it becomes the stored copy
        (see ``RepoBlobs.finish``); a duplicate of a stored blob is never fsynced.

        The rest wait before reading a byte, so their data waits in the kernel's socket
        buffers, not in this process: 100 concurrent uploads (20 images of 5 layers pushed
        at once) otherwise held ~250 MiB of buffers here (8 streams: 134 MiB peak), and
        the disk and two cores are saturated by fewer streams anyway. The wait is short
        (``ADMISSION_WAIT``): a few slow clients must never hold everyone else's uploads.
        """
        async with self.admitted():
            return await self._append(session, body, start, length, durable)

    @contextlib.asynccontextmanager
    async def admitted(self) -> AsyncIterator[None]:
        """A turn to stream a body (see :meth:`append`), or none after ``ADMISSION_WAIT``."""
        try:
            await asyncio.wait_for(self.pool.admission.acquire(), ADMISSION_WAIT)
            admitted = True
        except TimeoutError:
            admitted = False
        try:
            yield
        finally:
            if admitted:
                self.pool.admission.release()

    async def digest_of(
        self, body: AsyncIterator[bytes], algorithm: str, length: int | None = None
    ) -> str:
        """The hex digest of ``body``, which is read and hashed but stored nowhere: a
        duplicate of bytes the root holds (see ``duplicate_uploads``). Streamed like
        :meth:`append`: in batches hashed in the upload threads, admitted the same way.
        BlobUploadInvalid when Content-Range declared another ``length``."""
        hasher = new_hasher(algorithm)
        feeder = _Feeder(self.pool.io, hasher.update)
        async with self.admitted():
            try:
                await feeder.feed(body)
            finally:
                feeder.wait()  # the hasher outlives no request
        received = feeder.fed
        if length is not None and received != length:
            raise BlobUploadInvalid(
                f"Content-Range declares {length} bytes but the body had {received}",
                {"declared": length, "received": received},
            )
        return hasher.hexdigest()

    async def _append(
        self,
        session: Session,
        body: AsyncIterator[bytes],
        start: int | None = None,
        length: int | None = None,
        durable: bool = True,
    ) -> int:
        """Stream ``body`` onto the end of the session; return how many bytes it added.

        ``start`` and ``length`` (from Content-Range) must match: the chunk must begin where
        the session ends (else it is refused whole, the session unchanged) and carry as many
        bytes as declared. On any failure midway the file and hash are rolled back, so a
        client may retry from the size GET reports.
        """
        if start is not None and start != session.size:
            raise RangeNotSatisfiable(
                f"chunk starts at {start} but the upload holds {session.size} bytes",
                session.size,
            )
        # Hash as it streams only while this worker's state covers the whole file.
        current = session.hashed == session.size
        hasher: Hasher | _NoHash = session.hasher if current else _NoHash()
        before_size, before_hash = session.size, hasher.copy()
        threads = self.pool.io
        out = await run_blocking(self.remote, self.backend.open_append, session.path)
        # The write of one batch overlaps the network read of the next. Its thread is
        # tracked as a concurrent future so that, whatever ends this request (even a
        # cancelled task), the file is never truncated or closed under a running write.
        feeder = _Feeder(threads, lambda data: _write_and_hash(out, data, hasher))
        try:
            await feeder.feed(body)
            added = feeder.fed
            if length is not None and added != length:
                raise BlobUploadInvalid(
                    f"Content-Range declares {length} bytes but the body had {added}",
                    {"declared": length, "received": added},
                )
            # A 202 promises the chunk survives a crash: the client will not send it again.
            # On object storage the sync is what puts the bytes at all (an appender's
            # close drops what it never synced), so a closing PUT's body is synced too;
            # a local file's bytes are readable once written, so only their durability
            # waits for the publish.
            if durable or self.remote:
                await asyncio.wrap_future(threads.submit(out.sync))
        except BaseException as exc:
            feeder.wait()  # at most one batch write, a few ms
            if self.remote:  # shielded: a cancelled request still rolls back
                await asyncio.shield(asyncio.to_thread(out.truncate, before_size))
            else:
                out.truncate(before_size)
            if current:
                session.hasher = cast(Hasher, before_hash)
            if is_disk_full(exc):
                raise StorageFull("no space left for the upload; nothing was published") from exc
            raise
        finally:
            if self.remote:
                await asyncio.shield(asyncio.to_thread(out.close))
            else:
                out.close()
        session.size = before_size + added
        if current:
            session.hashed = session.size
        session.touched = time.time()
        return added

    def matches(self, session: Session, digest: Digest) -> bool:
        """Whether the session's bytes hash to ``digest`` (called under its lock). The
        bytes this worker's state does not cover are read back and hashed here, once."""
        if digest.algorithm != "sha256":
            return (
                _rehash(self.backend, session.path, digest.algorithm)[1].hexdigest() == digest.hex
            )
        if session.hashed < session.size:
            read, _ = _rehash(
                self.backend, session.path, hasher=session.hasher, offset=session.hashed
            )
            session.hashed += read
        return session.hashed == session.size and session.hasher.hexdigest() == digest.hex

    def forget(self, session: Session) -> None:
        """Drop the session; its file has been published or is removed here."""
        self._sessions.pop((session.repo, session.id), None)
        _unlink(self.backend, session.path)
        self._drop_lock_file(session.repo, session.id)

    def _drop_lock_file(self, repo: str, session_id: str) -> None:
        """A remote session's lock file goes after its objects: a waiter that still gets
        the lock then finds the session gone (BlobUploadUnknown), as on a local root."""
        lock_file = self._lock_file(repo, session_id)
        if lock_file is not None:
            LOCAL.delete(lock_file)

    def busy(self, repo: str, session_id: str) -> bool:
        """True while a request, of any worker process, is writing to the session."""
        session = self._sessions.get((repo, session_id))
        if session is not None and session.lock.locked():
            return True
        if self.shared is not None:
            # Another replica's writer is not visible here; GC's idle check (the state
            # object is rewritten by every chunk's sync) keeps it from a live session.
            return False
        return locked_elsewhere(self._lock_file(repo, session_id) or self._path(repo, session_id))

    def discard(self, repo: str, session_id: str) -> None:
        """Remove an abandoned session, live or only on disk."""
        session = self._sessions.pop((repo, session_id), None)
        _unlink(self.backend, session.path if session else self._path(repo, session_id))
        self._drop_lock_file(repo, session_id)
