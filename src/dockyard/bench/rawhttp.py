"""A lean keep-alive HTTP/1.1 client for the small-request workloads (manifests, listings).

The client shares two cores with the servers it measures. aiohttp's client spends about
as much CPU per small request as a fast server does to answer it, so at 64 connections it
saturates a core and caps what can be measured (about 15k req/s here, where dockyard
answers 20k). This client sends pre-built request bytes over asyncio streams and parses
only the status, Content-Length and chunked framing: about 60% of a core at 20k req/s.
It is used only in timed runs of GET and HEAD lookups; everything else goes through aiohttp.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

_CONTENT_LENGTH = b"\r\ncontent-length:"
_CHUNKED = b"\r\ntransfer-encoding: chunked"
_CLOSE = b"\r\nconnection: close"


class HttpError(Exception):
    """A malformed or cut-short answer."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    def close(self) -> None:
        self.writer.close()

    async def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return bytes(body)
            body += (await self.reader.readexactly(size + 2))[:-2]

    async def roundtrip(self, request: bytes, head: bool) -> tuple[int, bytes, bool]:
        """Send ``request``; the status, the body, and whether the connection stays open."""
        self.writer.write(request)
        header = await self.reader.readuntil(b"\r\n\r\n")
        if not header.startswith(b"HTTP/1."):
            raise HttpError(f"not an HTTP answer: {header[:40]!r}")
        status = int(header[9:12])
        lower = header.lower()
        keep = _CLOSE not in lower
        if head or status in (204, 304) or 100 <= status < 200:
            return status, b"", keep
        if _CHUNKED in lower:
            return status, await self._chunked(), keep
        at = lower.find(_CONTENT_LENGTH)
        if at < 0:
            return status, await self.reader.read(), False
        end = lower.index(b"\r\n", at + 2)
        length = int(lower[at + len(_CONTENT_LENGTH) : end])
        return status, await self.reader.readexactly(length), keep


class RawPool:
    """Keep-alive connections to one server, opened on demand, reused while they last.

    As many connections are open as requests are in flight: the caller bounds that.
    """

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.hostname is None:
            raise ValueError(f"no host in {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self._authority = parts.netloc
        self._idle: list[_Connection] = []

    def request(self, method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
        """The bytes of one request, built once and sent many times."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self._authority}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connect(self) -> _Connection:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)
        return _Connection(reader, writer)

    async def send(self, request: bytes, head: bool = False) -> tuple[int, bytes]:
        """One round trip on an idle connection (or a new one): status and body."""
        conn = self._idle.pop() if self._idle else await self._connect()
        try:
            status, body, keep = await conn.roundtrip(request, head)
        except BaseException:
            conn.close()
            raise
        if keep:
            self._idle.append(conn)
        else:
            conn.close()
        return status, body

    async def warm(self, connections: int) -> None:
        """Open ``connections`` connections, each proven by a ``GET /v2/``."""
        ping = self.request("GET", "/v2/")

        async def one() -> _Connection:
            conn = await self._connect()
            status, _, _ = await conn.roundtrip(ping, head=False)
            if status != 200:
                conn.close()
                raise HttpError(f"GET /v2/: {status}")
            return conn

        opened = await asyncio.gather(*(one() for _ in range(connections)), return_exceptions=True)
        self._idle += [c for c in opened if isinstance(c, _Connection)]
        for outcome in opened:
            if isinstance(outcome, BaseException):
                raise outcome

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
