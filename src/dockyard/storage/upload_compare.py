"""A duplicate's body compared with the stored copy it duplicates, instead of hashed.

The copy a duplicate upload pinned (see ``duplicate_uploads``) was hashed when it came
in, and when its verified stamp (``stamps``) still matches, it has not been rewritten
since: the server serves it on that word. Bytes equal to it hash to the digest, and any
other bytes do not, so comparing decides what hashing would, at a fraction of the cost:
a read of the copy (from the page cache, when 20 clients push it at once) and a memcmp,
against a SHA-256 pass of ~0.9 CPU-seconds per GiB on this machine.

On the first difference, nothing is decided by the comparison: the equal prefix is
copied from the copy into the session file (and hashed), and the rest of the body is
appended as any upload's, so the final check hashes the client's bytes whole and
answers as always (DIGEST_INVALID for wrong bytes; and if it was the copy that changed
under its stamp, the client's bytes are there to be published).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from dockyard.oci.digest import new_hasher
from dockyard.storage.backend import StorageBackend
from dockyard.storage.upload_session import Session
from dockyard.storage.uploads import BATCH, Uploads, joined


@dataclass
class Difference:
    """Where a body first differed from the copy: the bytes equal before it, and the
    body from there on (pieces already read, then the unread rest)."""

    offset: int
    rest: AsyncIterator[bytes]


def _same(copy: BinaryIO, offset: int, data: bytes) -> bool:
    """Whether ``copy`` holds ``data`` at ``offset`` (one comparison at a time runs)."""
    copy.seek(offset)
    return copy.read(len(data)) == data


async def _chain(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for piece in first:
        yield piece
    async for piece in rest:
        yield piece


async def _outcome(pending: concurrent.futures.Future[bool]) -> bool:
    return pending.result() if pending.done() else await asyncio.wrap_future(pending)


async def compare_body(
    uploads: Uploads, body: AsyncIterator[bytes], copy: Path, size: int
) -> Difference | None:
    """None when ``body`` holds exactly the ``size`` bytes of ``copy``; else where it
    first differs. Read in batches like any upload's, compared in the upload threads
    (a read of the copy may wait for the disk), one batch while the next arrives."""
    threads = uploads.pool.io
    stored = uploads.backend.open_read(copy)
    confirmed = 0
    pending: concurrent.futures.Future[bool] | None = None
    batch = b""
    try:
        async with uploads.admitted():
            pieces: list[bytes] = []
            gathered = 0
            async for chunk in body:
                pieces.append(chunk)
                gathered += len(chunk)
                if gathered < BATCH:
                    continue
                if pending is not None:
                    if not await _outcome(pending):
                        return Difference(confirmed, _chain([batch, *pieces], body))
                    confirmed += len(batch)
                batch, pieces, gathered = joined(pieces), [], 0
                pending = threads.submit(_same, stored, confirmed, batch)
            if pending is not None:
                if not await _outcome(pending):
                    return Difference(confirmed, _chain([batch, *pieces], body))
                confirmed += len(batch)
                pending = None
            if pieces:
                last = joined(pieces)
                if not await asyncio.wrap_future(threads.submit(_same, stored, confirmed, last)):
                    return Difference(confirmed, _chain([last], body))
                confirmed += len(last)
            return None if confirmed == size else Difference(confirmed, _chain([], body))
    finally:
        if pending is not None:
            concurrent.futures.wait([pending])  # a few microseconds: the file outlives it
        stored.close()


def copy_prefix(backend: StorageBackend, session: Session, copy: Path, size: int) -> None:
    """Put the first ``size`` bytes of ``copy`` into the (empty) session file and its
    hash, as if the client had sent them: the body differed from the copy only after
    them. Blocking; called under the session's lock. On failure the file is emptied."""
    out = backend.open_append(session.path)
    try:
        with backend.open_read(copy) as f:
            left = size
            while left:
                chunk = f.read(min(BATCH, left))
                if not chunk:
                    raise FileNotFoundError(f"{copy} is shorter than {size} bytes")
                out.write(chunk)
                session.hasher.update(chunk)
                left -= len(chunk)
    except BaseException:
        out.truncate(0)
        session.hasher, session.hashed = new_hasher(), 0
        raise
    finally:
        out.close()
    session.size = session.hashed = size
