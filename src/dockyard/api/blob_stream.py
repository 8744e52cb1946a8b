"""Serving a blob that is not a local file (object storage): streamed, with one Range.

A local blob goes to sendfile (``web.FileResponse``). A whole-blob GET in a bucket is
first tried directly (:func:`stream_direct`: the GET sent at once, with a HEAD of the
repository's reference, and served only when their answers prove the blob there and
good, see ``storage.direct_reads``). Otherwise, after the full look-up, the blob is
fetched from a presigned URL of its object (``StorageBackend.object_url``: signed
locally, no round trip) by the loop's own HTTP client (``api/object_client.py``), one
ranged GET. Either way each piece
read from the store's socket is written to the client's before the next is read: never
the whole blob in memory or on the local disk, and the client's pace sets the reads
(aiohttp's ``drain`` after each write, and the client's bounded read buffer). A store that
fails before the first byte is a 503 with ``Retry-After``; after it, the client's
connection is cut short of its ``Content-Length`` (one warning line), so it never takes a
short blob for a whole one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from pathlib import Path

import aiohttp
from aiohttp import web
from yarl import URL

from dockyard.api.object_client import OBJECT_CLIENT
from dockyard.oci.digest import Digest
from dockyard.storage.backend import StorageBackend
from dockyard.storage.direct_reads import DirectRead, DirectReads
from dockyard.storage.errors import BlobUnknown, Unavailable
from dockyard.web.transfer import prepare_large_send

log = logging.getLogger("dockyard.api")

#: How long a presigned URL the server streams from stays valid: one pull's request is
#: sent at once, so a minute is ample and a URL that leaks is soon useless.
STREAM_EXPIRY = 60


class Unsatisfiable(Exception):
    """The Range asks for nothing the blob has: 416."""


def byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(first, last) byte a ``Range`` asks for; None for the whole blob.

    Read exactly as aiohttp's ``FileResponse`` reads it for a local blob (its
    ``http_range`` parse, the tail form, the end clamped to the size), so a client sees
    the same answer whichever storage a root uses. Unsatisfiable when the header is not
    one range of bytes, or starts past the end.
    """
    try:
        rng = request.http_range
    except ValueError as exc:
        raise Unsatisfiable from exc
    start, end = rng.start, rng.stop
    if start is None:
        return None
    if start < 0 and end is None:  # the last N bytes
        start = max(start + size, 0)
        count = size - start
    else:
        count = min(end if end is not None else size, size) - start
    if start >= size:
        raise Unsatisfiable
    return start, start + count - 1


async def stream_blob(
    request: web.Request,
    backend: StorageBackend,
    path: Path,
    size: int,
    headers: dict[str, str],
    *,
    verify: bool = True,
) -> web.StreamResponse:
    """200 (or 206 for one Range) with the blob's bytes streamed from the object store.

    ``verify``: check the store's TLS certificate (``storageDriver.skipverify`` off).
    """
    try:
        wanted = byte_range(request, size)
    except Unsatisfiable:
        return web.Response(status=416, headers={**headers, "Content-Range": f"bytes */{size}"})
    first, last = wanted if wanted is not None else (0, size - 1)
    length = last - first + 1 if size else 0
    response = web.StreamResponse(status=200 if wanted is None else 206, headers=headers)
    response.headers["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    response.content_length = length
    if request.method == "HEAD" or length == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    # Signing is local, but credentials from a role may be refreshed over the network.
    url = await asyncio.to_thread(backend.object_url, path, STREAM_EXPIRY)
    if url is None:
        raise RuntimeError(f"{path} is neither a local file nor an object with a URL")
    session = request.app[OBJECT_CLIENT].session(verify)
    ask = {} if wanted is None else {"Range": f"bytes={first}-{last}"}
    try:
        store = await session.get(URL(url, encoded=True), headers=ask)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise Unavailable(f"the object store did not answer for {path.name}: {exc}") from exc
    async with store:
        if store.status == 404:
            raise BlobUnknown(f"{path.name} is no longer in the bucket")
        if store.status != (200 if wanted is None else 206) or store.content_length != length:
            raise Unavailable(
                f"the object store answered {store.status} with {store.content_length} bytes "
                f"for {length} bytes of {path.name}"
            )
        prepare_large_send(request, length)
        await response.prepare(request)
        await _relay(request, response, store, path, length)
    return response


async def _relay(
    request: web.Request,
    response: web.StreamResponse,
    store: aiohttp.ClientResponse,
    path: Path,
    length: int,
) -> None:
    """Copy ``length`` bytes of the store's answer to the prepared ``response``."""
    left = length
    while left:
        try:
            # One socket read's bytes as they arrived: no join, no copy.
            piece, _ = await store.content.readchunk()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            _cut(request, path, length - left, length, repr(exc))
            return
        if not piece:
            _cut(request, path, length - left, length, "the object ended early")
            return
        await response.write(piece)
        left -= len(piece)
    await response.write_eof()


async def stream_direct(
    request: web.Request,
    reads: DirectReads,
    read: DirectRead,
    digest: Digest,
    headers: dict[str, str],
    *,
    verify: bool = True,
) -> web.StreamResponse | None:
    """200 with the whole blob, streamed from the GET of ``read`` sent at once with the
    HEAD of its reference, when their answers prove it there and good
    (``storage.direct_reads``); None when they do not: nothing was sent to the client,
    and the caller takes the full path, which gives the exact answer."""
    session = request.app[OBJECT_CLIENT].session(verify)
    # A redirect is no answer to trust (another host, another signature): the full path.
    sending = session.get(URL(read.url, encoded=True), allow_redirects=False)
    getting = asyncio.ensure_future(_answer(sending))
    try:
        named = None if read.reference_url is None else await _head(session, read.reference_url)
        # A reference that is not there already says the full path must decide.
        declined = read.reference_url is not None and (named is None or named[0] != 200)
        store = None if declined else await getting
    except BaseException:
        _abandon(getting)
        raise
    if store is None:
        _abandon(getting)
        reads.drop(read)
        return None
    async with store:
        size = None
        if store.status == 200:
            named_headers = None if named is None else named[1]
            size = await reads.accept(read, digest, store.headers, named_headers)
        if not size or store.content_length != size:
            reads.drop(read)
            return None  # its unread body closes the store's connection, never reused
        response = web.StreamResponse(status=200, headers=headers)
        response.headers["Accept-Ranges"] = "bytes"
        response.content_length = size
        prepare_large_send(request, size)
        await response.prepare(request)
        await _relay(request, response, store, read.path, size)
    return response


async def _answer(
    sending: Awaitable[aiohttp.ClientResponse],
) -> aiohttp.ClientResponse | None:
    """The store's answer (its headers read), or None when it could not be had."""
    try:
        return await sending
    except (aiohttp.ClientError, TimeoutError, OSError):
        return None


async def _head(session: aiohttp.ClientSession, url: str) -> tuple[int, Mapping[str, str]] | None:
    """Status and headers of a presigned HEAD; None when the store did not answer."""
    answer = await _answer(session.head(URL(url, encoded=True), allow_redirects=False))
    if answer is None:
        return None
    answer.release()  # no body: the connection goes back to the pool
    return answer.status, answer.headers


def _abandon(getting: asyncio.Future[aiohttp.ClientResponse | None]) -> None:
    """Stop a GET no one will read; an answer already in is released (its unread body
    closes the connection, so it is never reused mid-body)."""
    getting.cancel()
    getting.add_done_callback(_release)


def _release(getting: asyncio.Future[aiohttp.ClientResponse | None]) -> None:
    if not getting.cancelled() and getting.exception() is None:
        answer = getting.result()
        if answer is not None:
            answer.release()


def _cut(request: web.Request, path: Path, sent: int, length: int, why: str) -> None:
    """The store failed mid-stream: cut the client's connection short of its
    ``Content-Length``, so it reports an error rather than keep a short blob."""
    log.warning(
        "blob %s: the object store failed after %d of %d bytes (%s); connection cut",
        path.name,
        sent,
        length,
        why,
    )
    if request.transport is not None:
        request.transport.abort()


#: How long a redirect's presigned URL stays valid: distribution's 20 minutes, time for
#: a client to follow it and read a large blob, short enough that a leaked URL soon dies.
REDIRECT_EXPIRY = 20 * 60


async def redirect_blob(
    backend: StorageBackend, path: Path, headers: dict[str, str]
) -> web.StreamResponse:
    """307 to a presigned URL of the blob's object (``storageDriver.redirect``): the
    client fetches the bytes, and any Range, from the store itself. Called only after
    the access check, since the URL lets its holder read the blob until it expires."""
    url = await asyncio.to_thread(backend.object_url, path, REDIRECT_EXPIRY)
    if url is None:
        raise RuntimeError(f"{path} is neither a local file nor an object with a URL")
    # No Cache-Control: the URL expires, so the redirect must not be kept for a year.
    return web.Response(
        status=307,
        headers={"Location": url, "Docker-Content-Digest": headers["Docker-Content-Digest"]},
    )
