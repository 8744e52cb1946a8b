"""Blob pulls that receive into one reused buffer and keep nothing: the lean pull client.

A pull at 1.5 GB/s through aiohttp's client cost the client about 70% of a core (a new
bytes object per socket read, a parser feed, a stream queue), on a machine whose other
core serves the bytes: the client, not the server, set the pace, and both servers looked
alike. Here the event loop's transport reads straight into a 1 MiB buffer of the
protocol's (``asyncio.BufferedProtocol``), the header is parsed once, and the body is only
counted, or hashed with ``verify``. Keep-alive connections are reused between pulls.
"""

from __future__ import annotations

import asyncio
import hashlib
from urllib.parse import urlsplit

#: Bytes handed to each socket read.
BUFFER = 1 << 20
_MAX_HEADER = 64 << 10


class PullError(Exception):
    """A pull that did not end in 200 with exactly the announced bytes."""


class _Sink(asyncio.BufferedProtocol):
    """One connection: sends a GET, counts the answer's body, signals when it is whole."""

    def __init__(self) -> None:
        self._view = memoryview(bytearray(BUFFER))
        self.transport: asyncio.Transport | None = None
        self._head = bytearray()
        self._in_head = True
        self._received = 0
        self._length = 0
        self._keep = True
        self._hasher: hashlib._Hash | None = None
        self._done: asyncio.Future[tuple[int, int, str | None]] | None = None
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._keep = False
        if self._done is not None and not self._done.done():
            self._done.set_exception(PullError(f"connection lost after {self._received} bytes"))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._view

    def _finish(self) -> None:
        assert self._done is not None
        digest = None if self._hasher is None else "sha256:" + self._hasher.hexdigest()
        if not self._done.done():
            self._done.set_result((self._status, self._received, digest))

    def buffer_updated(self, nbytes: int) -> None:
        if self._done is None or self._done.done():
            self._keep = False  # bytes nobody asked for: never reuse this connection
            return
        data = self._view[:nbytes]
        if self._in_head:
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > _MAX_HEADER:
                    self._keep = False
                    self._done.set_exception(PullError("answer header over 64 KiB"))
                return
            problem = self._parse_head(bytes(self._head[:end]).lower())
            if problem is not None:
                self._keep = False
                self._done.set_exception(PullError(problem))
                return
            body = self._head[end + 4 :]
            self._in_head = False
            data = memoryview(body)
        if self._hasher is not None:
            self._hasher.update(data)
        self._received += len(data)
        if self._received >= self._length:
            if self._received > self._length:
                self._keep = False
            self._finish()

    def _parse_head(self, head: bytes) -> str | None:
        """Take status, Content-Length and keep-alive from the header; what is wrong, if any."""
        if not head.startswith(b"http/1."):
            return f"not an HTTP answer: {head[:40]!r}"
        self._status = int(head[9:12])
        self._keep = b"\r\nconnection: close" not in head
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            return f"status {self._status} without Content-Length"
        end = head.find(b"\r\n", at + 2)
        self._length = int(head[at + 17 : end if end >= 0 else len(head)])
        return None

    async def get(self, request: bytes, verify: bool) -> tuple[int, int, str | None]:
        """Send ``request``; the status, body bytes received, and their digest if verifying."""
        if not self.reusable or self.transport is None:
            raise PullError("connection closed")
        self._head.clear()
        self._in_head, self._received, self._length = True, 0, 0
        self._hasher = hashlib.sha256() if verify else None
        self._done = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        try:
            return await self._done
        finally:
            self._done = None

    @property
    def reusable(self) -> bool:
        return self._keep and self.transport is not None and not self.transport.is_closing()


class SinkPool:
    """Keep-alive pull connections to one server, as many as pulls in flight."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None:
            raise ValueError(f"no host in {base_url!r}")
        self.host, self.port, self._authority = parts.hostname, parts.port or 80, parts.netloc
        self._idle: list[_Sink] = []

    async def _connect(self) -> _Sink:
        loop = asyncio.get_running_loop()
        _, sink = await loop.create_connection(_Sink, self.host, self.port)
        return sink

    async def pull(self, path: str, size: int, digest: str | None = None) -> int:
        """GET ``path``: 200 with Content-Length ``size`` and as many bytes, else PullError.

        With ``digest`` the body is hashed and must match it.
        """
        request = f"GET {path} HTTP/1.1\r\nHost: {self._authority}\r\n\r\n".encode("latin-1")
        sink = None
        while self._idle and sink is None:
            sink = self._idle.pop()
            if not sink.reusable:
                if sink.transport is not None:
                    sink.transport.close()
                sink = None
        if sink is None:
            sink = await self._connect()
        try:
            status, received, got = await sink.get(request, digest is not None)
        except BaseException:
            if sink.transport is not None:
                sink.transport.close()
            raise
        if sink.reusable and status == 200:
            self._idle.append(sink)
        elif sink.transport is not None:
            sink.transport.close()
        if status != 200:
            raise PullError(f"GET {path}: {status}")
        if received != size:
            raise PullError(f"GET {path}: {received} bytes, expected {size}")
        if digest is not None and got != digest:
            raise PullError(f"GET {path}: content does not match {digest}")
        return received

    async def warm(self, connections: int) -> None:
        """Open ``connections`` connections before the timed section."""
        opened = await asyncio.gather(
            *(self._connect() for _ in range(connections)), return_exceptions=True
        )
        self._idle += [s for s in opened if isinstance(s, _Sink)]
        for outcome in opened:
            if isinstance(outcome, BaseException):
                raise outcome

    def close(self) -> None:
        for sink in self._idle:
            if sink.transport is not None:
                sink.transport.close()
        self._idle.clear()
