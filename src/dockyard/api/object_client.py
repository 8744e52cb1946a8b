"""The HTTP client that reads blobs from object storage by presigned URL, on the loop.

boto3 reads a body in a thread, 1 MiB at a time, and each piece crosses to the loop and
back: the thread hops, the GIL hand-offs and the copies made a pull from S3 cost four
times docker-registry's CPU per byte. A presigned GET is the same request boto3 would
send (signed locally, no round trip), and aiohttp reads its body on the loop in socket
sized pieces that go straight to the client's socket. boto3 keeps every other call.

One session per choice of TLS verification (``storageDriver.skipverify``): a root that
skips verification never lends its connections to one that does not. The sessions are
made on first use, inside the worker's loop, and closed with the application.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

#: Connecting to the store and waiting for its next bytes: a store that stops answering
#: fails the pull (503 before the first byte, a cut connection after) instead of
#: holding a client forever.
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: The client's read buffer: aiohttp stops reading the socket when this much is waiting
#: (twice it, exactly), so a slow client holds at most this per pull, while each piece is
#: large enough that one write per socket read stays cheap.
READ_BUFFER = 1024 * 1024


class ObjectClient:
    """aiohttp sessions for object GETs, one per TLS verification choice."""

    def __init__(self) -> None:
        self._sessions: dict[bool, aiohttp.ClientSession] = {}

    def session(self, verify: bool) -> aiohttp.ClientSession:
        session = self._sessions.get(verify)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=0,  # one connection per pull in flight, as boto3's pool gave
                ssl=verify,  # False: skipverify, no certificate check
                keepalive_timeout=30,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=CONNECT_TIMEOUT, sock_read=READ_TIMEOUT
                ),
                auto_decompress=False,
                read_bufsize=READ_BUFFER,
                skip_auto_headers=("User-Agent",),
            )
            self._sessions[verify] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


#: The application's object client (see :func:`install`).
OBJECT_CLIENT: web.AppKey[ObjectClient] = web.AppKey("object_client", ObjectClient)


def install(app: web.Application) -> None:
    """Give the application its object client, closed when the application stops."""
    client = ObjectClient()
    app[OBJECT_CLIENT] = client

    async def close(_: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close)
