"""Reading a request body: streamed as it arrives, or whole up to a limit."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

from aiohttp import web

#: Bytes the kernel gathers before it wakes the loop, for a body of known length. Real
#: clients write 32 KiB at a time (skopeo), and a loop that wakes for each read costs
#: ~80 µs of Python per wake-up: 1.8 CPU-s of a 1 GiB push. At 256 KiB (asyncio's largest
#: read) the same push takes ~4,000 wake-ups instead of ~22,000.
RECEIVE_LOW_WATER = 256 * 1024


class _LowWater:
    """``SO_RCVLOWAT`` on a connection while a body of known length is read.

    The mark never exceeds the bytes still to come, so the last read is never held back
    waiting for bytes the client will not send; a closing peer wakes the loop whatever the
    mark. It goes back to 1 when the body is read, for the next request on the connection.
    """

    def __init__(self, request: web.Request, sock: socket.socket, length: int) -> None:
        self.request = request
        self.sock = sock
        self.length = length
        self.current = 1

    @classmethod
    def of(cls, request: web.Request) -> _LowWater | None:
        length = request.content_length
        transport = request.transport
        if length is None or length < 2 * RECEIVE_LOW_WATER or transport is None:
            return None
        sock = transport.get_extra_info("socket")
        return None if sock is None else cls(request, sock, length)

    def _set(self, mark: int) -> None:
        if mark != self.current:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, mark)
            except OSError:
                return  # a closed socket: the read that follows reports it
            self.current = mark

    def before_read(self) -> None:
        left = self.length - self.request.content.total_bytes
        self._set(max(1, min(RECEIVE_LOW_WATER, left)))

    def reset(self) -> None:
        self._set(1)


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, never held whole in memory; a long body of known
    length in pieces of ~``RECEIVE_LOW_WATER`` bytes (see ``_LowWater``)."""
    low_water = _LowWater.of(request)
    try:
        while True:
            if low_water is not None:
                low_water.before_read()
            chunk = await request.content.readany()
            if not chunk:
                return
            yield chunk
    finally:
        if low_water is not None:
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
