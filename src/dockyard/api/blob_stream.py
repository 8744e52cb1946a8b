"""Serving a blob that is not a local file (object storage): streamed, with one Range.

A local blob goes to sendfile (``web.FileResponse``). A blob in a bucket is read through
the backend's ``open_read`` (a ranged GET) in bounded pieces, each read in a thread and
written to the client before the next is read: never the whole blob in memory or on the
local disk, and the client's pace sets the reads (aiohttp's ``drain`` after each write).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from dockyard.storage.backend import StorageBackend

#: Bytes read from the store per piece: large enough that a thread hop and a ranged
#: read's overhead are small, small enough that many concurrent pulls hold little.
PIECE = 1024 * 1024


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
) -> web.StreamResponse:
    """200 (or 206 for one Range) with the blob's bytes read piece by piece."""
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
    reader: BinaryIO = await asyncio.to_thread(backend.open_read, path, first)
    try:
        await response.prepare(request)
        left = length
        while left:
            piece = await asyncio.to_thread(reader.read, min(PIECE, left))
            if not piece:  # the object shrank under us: never pad, end short
                raise ConnectionResetError(f"{path.name} ended {left} bytes early")
            await response.write(piece)
            left -= len(piece)
        await response.write_eof()
    finally:
        await asyncio.to_thread(reader.close)
    return response
