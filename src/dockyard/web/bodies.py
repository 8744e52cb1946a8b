"""Reading a request body: streamed as it arrives, or whole up to a limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web


async def body_chunks(request: web.Request) -> AsyncIterator[bytes]:
    """The request body as it arrives, never held whole in memory."""
    while True:
        chunk = await request.content.readany()
        if not chunk:
            return
        yield chunk


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
