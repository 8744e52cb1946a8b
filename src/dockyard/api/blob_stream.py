"""Serving a blob that is not a local file (object storage): streamed, with one Range.

A local blob goes to sendfile (``web.FileResponse``). A blob in a bucket is read through
the backend's ``open_read`` (a ranged GET) in bounded pieces, each read in a thread and
written to the client before the next is read: never the whole blob in memory or on the
local disk, and the client's pace sets the reads (aiohttp's ``drain`` after each write).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from dockyard.storage.backend import StorageBackend

#: Bytes read from the store per piece: large enough that a thread hop and a ranged
#: read's overhead are small, small enough that many concurrent pulls hold little.
PIECE = 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)\Z")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range``; None for the whole blob.

    Several ranges, or a form this server does not serve, are answered whole, as RFC 9110
    allows; a range that starts past the end is 416, as for a local blob.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        return None
    if not match[1]:  # the last N bytes
        tail = int(match[2])
        if tail == 0:
            raise _unsatisfiable(size)
        return max(size - tail, 0), size - 1
    first = int(match[1])
    last = int(match[2]) if match[2] else size - 1
    if first >= size or last < first:
        raise _unsatisfiable(size)
    return first, min(last, size - 1)


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    """The answer sendfile's ``FileResponse`` gives a local blob, for the same request."""
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


async def stream_blob(
    request: web.Request,
    backend: StorageBackend,
    path: Path,
    size: int,
    headers: dict[str, str],
) -> web.StreamResponse:
    """200 (or 206 for one Range) with the blob's bytes read piece by piece."""
    wanted = parse_range(request.headers.get("Range"), size)
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
