"""A round-robin HTTP proxy on loopback, standing in for a load balancer in front of
replicas: every request goes to the next replica, with no stickiness at all.

Per request, not per connection: the proxy reads one request head, rewrites its
``Connection`` header to ``close``, opens a fresh connection to the next replica and then
pipes bytes both ways until the replica closes. The replica answers ``Connection: close``
too, so the client's next request comes on a new connection and reaches the next replica.
Bodies stream through untouched (a 64 MiB PATCH is never held here). A replica that
refuses connections (killed) is skipped; a request it was serving when it died has its
client connection reset, as a real balancer does (it cannot replay a streamed body).
The proxy runs its own asyncio loop in a daemon thread, so synchronous tests can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from collections import Counter

from conftest import free_port

_HEAD_LIMIT = 64 * 1024


class RoundRobinProxy:
    """Listens on ``127.0.0.1:port``; request N goes to ``targets[N % len(targets)]``."""

    def __init__(self, targets: list[int]) -> None:
        self.targets = targets
        self.port = free_port()
        #: Which replica port each request went to, in order (tests check the spread).
        self.sent: list[int] = []
        #: Each request's first line (``GET /path?query HTTP/1.1``), in arrival order:
        #: what a server asked of the store behind the proxy.
        self.requests: list[str] = []
        self._next = itertools.cycle(range(len(targets)))
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def spread(self) -> Counter[int]:
        return Counter(self.sent)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def start() -> None:
            self._server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, limit=_HEAD_LIMIT
            )

        self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A connection to the next replica that accepts one: a replica that refuses (it
        was killed) is skipped, as a balancer's passive health check does; a request
        already under way on it is not moved (its client sees the reset)."""
        for _ in range(len(self.targets)):
            target = self.targets[next(self._next)]
            try:
                connection = await asyncio.open_connection("127.0.0.1", target)
            except ConnectionRefusedError:
                continue
            self.sent.append(target)
            return connection
        raise ConnectionRefusedError("no replica accepts a connection")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            up_reader, upstream = await self._connect()
            upstream.write(_closing(head))
            await upstream.drain()
            to_replica = asyncio.ensure_future(_pipe(reader, upstream))
            try:
                await _pipe(up_reader, writer)
            finally:
                to_replica.cancel()
                with contextlib.suppress(BaseException):
                    await to_replica
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            # A replica killed mid-request: reset the client, as a balancer would.
            with contextlib.suppress(OSError):
                transport = writer.transport
                transport.abort()
        finally:
            for stream in (upstream, writer):
                if stream is not None:
                    with contextlib.suppress(OSError):
                        stream.close()


def _closing(head: bytes) -> bytes:
    """The request head with ``Connection: close`` in place of any Connection header."""
    lines = head[:-4].split(b"\r\n")
    kept = [line for line in lines[1:] if not line.lower().startswith(b"connection:")]
    return b"\r\n".join([lines[0], *kept, b"Connection: close"]) + b"\r\n\r\n"


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Copy until ``source`` ends; then half-close ``sink``. A reset raises OSError."""
    while True:
        data = await source.read(256 * 1024)
        if not data:
            break
        sink.write(data)
        await sink.drain()
    if sink.can_write_eof():
        with contextlib.suppress(OSError):
            sink.write_eof()
