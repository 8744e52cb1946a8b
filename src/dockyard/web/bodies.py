"""Reading a request body: streamed as it arrives, or whole up to a limit."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

from aiohttp import web

#: Bytes the kernel gathers before it wakes the loop, for a long body of known length, and
#: the size of each read then. Real clients write 32 KiB at a time (skopeo), and a loop
#: that wakes for each costs ~80 µs of Python per wake-up: 1.8 CPU-s of a 1 GiB push
#: (22,000 wake-ups); at 512 KiB it is ~2,000. Below glibc's mmap threshold (1 MiB, see
#: ``app/memory.py``), so each read's buffer comes from the heap, not fresh page faults.
RECEIVE_PIECE = 512 * 1024


class _LowWater:
    """Large reads of a body of known length: ``SO_RCVLOWAT`` and asyncio's read size.

    The mark never exceeds the bytes still to come, so the last read is never held back
    waiting for bytes the client will not send, and a closing peer wakes the loop whatever
    the mark. Both go back when the body is read, for the next request on the connection.
    asyncio reads at most ``max_size`` bytes per wake-up (256 KiB); where its transport has
    no such attribute, reads stay at that size and only the mark applies.
    """

    def __init__(
        self, request: web.Request, transport: asyncio.BaseTransport, sock: socket.socket
    ) -> None:
        self.request = request
        self.length = request.content_length or 0
        self.sock = sock
        self.transport = transport
        self.current = 1
        self.read_size: int | None = getattr(transport, "max_size", None)
        if isinstance(self.read_size, int) and self.read_size < RECEIVE_PIECE:
            transport.max_size = RECEIVE_PIECE  # type: ignore[attr-defined]
        else:
            self.read_size = None

    @classmethod
    def of(cls, request: web.Request) -> _LowWater | None:
        length = request.content_length
        transport = request.transport
        if length is None or length < 2 * RECEIVE_PIECE or transport is None:
            return None
        sock = transport.get_extra_info("socket")
        return None if sock is None else cls(request, transport, sock)

    def _set(self, mark: int) -> None:
        if mark != self.current:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, mark)
            except OSError:
                return  # a closed socket: the read that follows reports it
            self.current = mark

    def before_read(self) -> None:
        left = self.length - self.request.content.total_bytes
        self._set(max(1, min(RECEIVE_PIECE, left)))

    def reset(self) -> None:
        self._set(1)
        if self.read_size is not None:
            self.transport.max_size = self.read_size  # type: ignore[attr-defined]


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, never held whole in memory."""
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return
        yield chunk


async def _large_pieces(request: web.Request, low_water: _LowWater) -> AsyncIterator[bytes]:
    while True:
        low_water.before_read()
        chunk = await request.content.readany()
        if not chunk:
            return
        yield chunk


@contextlib.asynccontextmanager
async def streamed_body(request: web.Request) -> AsyncIterator[AsyncIterator[bytes]]:
    """An upload's body as it arrives; a long body of known length in pieces of
    ~``RECEIVE_PIECE`` bytes (see ``_LowWater``).

    The socket settings are undone when the block ends, however it ends. An abandoned
    generator's ``finally`` is no place for that: a failed upload's traceback keeps the
    generator alive until the cyclic GC runs, and meanwhile the connection's next request
    (a few hundred bytes, under the mark) would never wake the loop.
    """
    low_water = _LowWater.of(request)
    if low_water is None:
        yield body_chunks(request)
        return
    try:
        yield _large_pieces(request, low_water)
    finally:
        low_water.reset()


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The whole body when it is at most ``limit`` bytes, else None (read no further)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    data = bytearray()
    async for chunk in body_chunks(request):
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)
