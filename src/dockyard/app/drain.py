"""Graceful stop: close the listener, let in-flight requests finish, then cut what is left.

aiohttp's own shutdown (``AppRunner.cleanup``) closes every connection first and from then
on drops the bytes that arrive on it, so an upload in flight could never finish: its body
stops mid-stream and it is cut when the timeout ends. Here the listener closes first, idle
keep-alive connections are closed, busy ones keep reading their request bodies, and every
response sent meanwhile says ``Connection: close``. Once nothing is in flight, or the grace
period is over, aiohttp's cleanup runs and cancels whatever is still going (an upload cut
that way rolls back to its last whole chunk, so the client can resume after the restart).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

log = logging.getLogger("dockyard")

#: How often the drain looks at its connections.
_POLL = 0.05


def _busy(handler: web.RequestHandler) -> bool:
    # aiohttp keeps no public flag for "a request is being handled on this connection".
    return bool(getattr(handler, "_request_in_progress", False))


async def drain(runner: web.AppRunner, grace: float) -> int:
    """Stop accepting and wait up to ``grace`` seconds; return requests still in flight."""
    for site in list(runner.sites):
        await site.stop()
    server = runner.server
    if server is None:
        return 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        busy = 0
        for handler in list(server.connections):
            if _busy(handler):
                busy += 1
            else:
                handler.close()  # idle keep-alive: nothing to finish
        if not busy or loop.time() >= deadline:
            return busy
        await asyncio.sleep(_POLL)
