"""Never serve a blob whose bytes no longer match its digest; move such files aside.

Before a blob goes out, its file's stat is compared with its verified stamp (see
``stamps``). When they differ, or the file was never checked (an adopted root, a blob
mounted from a copy), it is hashed first, in a thread, once however many requests ask at
the same moment. A file that fails is quarantined: moved to
``ROOT/_dockyard/quarantine/<repo>/<alg>/<hex>.<unix time>``, kept for a person to look
at, and dropped from the dedupe map, so it is gone from the repository (a client's next
push brings the good bytes back) and no other repository links to it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.private import private_folder
from dockyard.storage.backend import StorageBackend
from dockyard.storage.errors import BlobUnknown
from dockyard.storage.paths import private_dir, quarantine_path
from dockyard.storage.root import StorageRoot

log = logging.getLogger("dockyard.integrity")

#: Verdicts of a serve-time check.
GOOD, BAD, GONE = "good", "bad", "gone"


def hash_open_file(fd: int, algorithm: str) -> str:
    """Hex digest of an open file, read from its start in 1 MiB batches (GIL released)."""
    hasher = hashlib.new(algorithm)
    offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        hasher.update(chunk)
        offset += len(chunk)
    return hasher.hexdigest()


def hash_path(path: str, algorithm: str) -> tuple[str, int, int, int] | None:
    """(hex, inode, size, mtime_ns) of a file, stat'ed around the read; None if unreadable.

    The stat must be the same before and after the read, or the result is for bytes that
    changed under us: then it is hashed again.
    """
    for _ in range(3):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            before = os.fstat(fd)
            hexdigest = hash_open_file(fd, algorithm)
            after = os.fstat(fd)
        except OSError:
            return None
        finally:
            os.close(fd)
        if (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns):
            return hexdigest, after.st_ino, after.st_size, after.st_mtime_ns
    return None


def hash_stored(
    backend: StorageBackend, path: Path, algorithm: str
) -> tuple[str, int, int, int] | None:
    """:func:`hash_path` through any backend: a local file is hashed as a file; a stored
    object is read in bounded pieces, stat'ed before and after (its ETag is its identity)."""
    local = backend.local_file(path)
    if local is not None:
        return hash_path(str(local), algorithm)
    for _ in range(3):
        try:
            before = backend.stat(path)
            if before is None:
                return None
            hasher = hashlib.new(algorithm)
            with backend.open_read(path) as f:
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
            after = backend.stat(path)
        except OSError:
            return None
        if after is None:
            return None
        if (before.st_ino, before.st_size) == (after.st_ino, after.st_size):
            return hasher.hexdigest(), after.st_ino, after.st_size, after.st_mtime_ns
    return None


def quarantine(
    root: StorageRoot, repo: str, digest: Digest, expected_ino: int, reason: str
) -> Path | None:
    """Move a repository's bad copy of ``digest`` aside; None if it changed meanwhile.

    ``expected_ino`` is the inode that was found bad: a good file published over it since
    then is left alone. Blocking; call it in a thread, under the repository's lock, then
    tell ``root.events`` on the event loop (observers are not thread-safe).
    """
    path = root.files.path(repo, digest)
    try:
        st = root.backend.stat(path)
    except OSError:
        return None
    if st is None or st.st_ino != expected_ino:
        return None
    dest = quarantine_path(root.path, repo, digest, time.time_ns())
    private_folder(private_dir(root.path))
    found = root.backend.resolve(path)
    held = None if found is None else found[0]
    if held is not None and held != path:
        # A reference (object storage with dedupe): the shared copy it names is what is
        # bad. It goes aside, so every reference to it answers 404 (never bad bytes)
        # until a push stores the good bytes again, which they all name once more.
        root.backend.move(held, dest)
        root.backend.delete(path)
    else:
        root.backend.move(path, dest)
    root.dedupe.forget(digest, path)
    root.stamps.forget(expected_ino)
    log.error(
        "blob %s in %s failed its integrity check (%s); moved to %s",
        digest,
        repo,
        reason,
        dest,
        extra={"fields": {"repo": repo, "digest": str(digest), "quarantine": str(dest)}},
    )
    return dest


class BlobVerifier:
    """The check a blob passes before it is served."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root
        self._hashing: dict[int, asyncio.Future[str]] = {}

    async def ensure_good(
        self, repo: str, digest: Digest, path: Path, st: os.stat_result | None = None
    ) -> int:
        """The file's size if its bytes match ``digest``; else quarantine it, BlobUnknown.

        ``st``: the file's stat, taken just before by the caller (on object storage each
        stat is a request): then it is not taken again.
        """
        if st is None:
            try:
                st = await self.root.off_loop(self.root.backend.stat, path)
            except OSError:
                st = None
        if st is None:
            raise _unknown(repo, digest)
        if await self.root.stamps.matches_soon(st, str(digest)):
            return st.st_size
        pending = self._hashing.get(st.st_ino)
        if pending is None:
            pending = asyncio.ensure_future(self._verify(repo, digest, path, st.st_ino))
            self._hashing[st.st_ino] = pending
            pending.add_done_callback(lambda _: self._hashing.pop(st.st_ino, None))
        verdict = await asyncio.shield(pending)
        if verdict == GOOD:
            return st.st_size
        if verdict == GONE:
            raise _unknown(repo, digest)
        raise BlobUnknown(
            f"blob {digest} in {repo!r} failed its integrity check (its bytes no longer "
            "hash to its digest) and was quarantined; push it again",
            {"digest": str(digest), "reason": "quarantined"},
        )

    async def _verify(self, repo: str, digest: Digest, path: Path, ino: int) -> str:
        result = await asyncio.to_thread(hash_stored, self.root.backend, path, digest.algorithm)
        if result is None:
            return GONE
        hexdigest, found_ino, size, found_mtime = result
        if hexdigest == digest.hex:
            st = await self.root.off_loop(self.root.backend.stat, path)
            if st is not None and (st.st_ino, st.st_size, st.st_mtime_ns) == (
                found_ino,
                size,
                found_mtime,
            ):
                self.root.stamps.record(st, str(digest))
            return GOOD
        reason = "content does not match digest"
        async with self.root.locks.hold(repo):
            moved = await asyncio.to_thread(quarantine, self.root, repo, digest, found_ino, reason)
        if moved is not None:
            self.root.events.quarantined(self.root.path, repo, str(digest), reason)
        return BAD


def _unknown(repo: str, digest: Digest) -> BlobUnknown:
    return BlobUnknown(f"blob {digest} is not in {repo!r}", {"digest": str(digest)})
