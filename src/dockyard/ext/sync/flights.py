"""Blob fetches from an upstream, shared by everyone waiting for the same blob.

A :class:`BlobFlight` streams one blob from the first upstream that has it into an upload
session, written through the root's storage backend as a push's chunks are (a local file,
or an upload's segments in a bucket), hashing as it writes, and publishes it only when
the bytes match the digest and the declared size. On a local root, clients asking for the
blob meanwhile follow the growing file: the first byte goes out as soon as it is on disk,
long before the fetch ends. The last byte is held back until the digest is verified, so a
client is never sent a whole blob of wrong bytes: if verification fails its connection is
cut short of ``Content-Length`` and the client reports an error. On object storage an
upload's bytes are readable only once its segments are put, so clients wait for the blob
to be published and are then served it as any stored blob. Concurrent requests, the
background fill and periodic sync all join the one flight per ``(repository, digest)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import aiohttp
from aiohttp import web

from dockyard.ext.sync.sync_stats import SyncStats
from dockyard.ext.sync.upstream import Upstream, UpstreamError
from dockyard.oci.digest import Digest, Hasher
from dockyard.storage.backend import Appender
from dockyard.storage.errors import StorageError
from dockyard.storage.store import RootServices
from dockyard.storage.upload_session import Session

log = logging.getLogger("dockyard.sync")

#: Bytes gathered from the upstream before one write+hash is handed to a thread.
BATCH = 1024 * 1024
#: Largest read a follower sends in one write to its client.
SEND = 4 * 1024 * 1024

#: Where to fetch from: each upstream with the name the blob has there, tried in order.
Sources = Sequence[tuple[Upstream, str]]


def _write_and_hash(out: Appender, data: bytes | bytearray, hasher: Hasher) -> None:
    out.write(data)
    hasher.update(data)


def _content_length(value: str | None) -> int | None:
    """A Content-Length the upstream sent, only if it is a plain non-negative integer."""
    if value is None or not value.isdigit() or len(value) > 18:
        return None
    return int(value)


class BlobFlight:
    """One blob on its way from an upstream into a repository."""

    def __init__(
        self, svc: RootServices, repo: str, digest: Digest, sources: Sources, stats: SyncStats
    ) -> None:
        self.svc, self.repo, self.digest, self.sources = svc, repo, digest, sources
        self.stats = stats
        #: The size the upstream declared (None: it did not say; chunked).
        self.size: int | None = None
        self.written = 0
        #: Where the bytes are being written while the flight is on.
        self.path: Path | None = None
        self.started = False
        self.done = False
        self.failed: str | None = None
        self._changed = asyncio.Event()
        self.task = asyncio.create_task(self._run(), name=f"sync-blob-{digest.hex[:12]}")

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _fail(self, why: str) -> None:
        self.failed = why
        self._notify()

    async def _run(self) -> None:
        try:
            for upstream, name in self.sources:
                try:
                    resp = await upstream.blob(name, str(self.digest))
                except UpstreamError as exc:
                    log.warning("sync: %s", exc)
                    continue
                if resp is None:
                    continue
                async with resp:
                    await self._receive(upstream, name, resp)
                return
            self._fail("no upstream has it")
        except asyncio.CancelledError:
            self._fail("cancelled")
            raise
        except Exception as exc:  # every failure must reach the followers
            log.exception("sync: fetching %s@%s failed", self.repo, self.digest)
            self._fail(str(exc))

    async def _receive(self, upstream: Upstream, name: str, resp: aiohttp.ClientResponse) -> None:
        where = f"{upstream.host}/{name}@{self.digest}"
        self.size = _content_length(resp.headers.get("Content-Length"))
        root = self.svc.root
        # A PUT on object storage: in a thread there, inline on a local root.
        session = await self.svc.blobs.open_upload(self.repo)
        session.hasher = self.digest.hasher()
        try:
            out = await root.off_loop(root.backend.open_append, session.path)
        except BaseException:
            await root.off_loop(root.uploads.forget, session)
            raise
        self.path = session.path
        self.started = True
        self._notify()
        published = False
        try:
            batch = bytearray()
            async for chunk in resp.content.iter_any():
                batch += chunk
                if self.size is not None and self.written + len(batch) > self.size:
                    raise UpstreamError(f"{where}: more bytes than its Content-Length")
                if len(batch) >= BATCH:
                    await self._write(out, session, batch)
                    batch = bytearray()
            if batch:
                await self._write(out, session, batch)
            if self.size is not None and self.written != self.size:
                raise UpstreamError(f"{where}: ended at {self.written} of {self.size} bytes")
            await asyncio.to_thread(out.sync)  # fsync, or the last segment and state put
            session.size = session.hashed = self.written  # hashed as it was written
            try:
                await self.svc.blobs.finish(session, self.digest)
            except StorageError as exc:
                self.stats.refused += 1
                log.error("sync: refused %s from %s: %s", self.digest, where, exc.message)
                self._fail(f"upstream bytes do not match {self.digest}")
                return
            published = True
            self.stats.blobs += 1
            self.stats.bytes += self.written
            self.done = True
            self._notify()
        except (UpstreamError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("sync: fetch of %s failed: %s", where, exc)
            self._fail(str(exc))
        except Exception as exc:
            log.warning("sync: fetch of %s failed: %r", where, exc)
            self._fail(repr(exc))
        finally:
            await root.off_loop(out.close)
            if not published:
                await root.off_loop(root.uploads.forget, session)

    async def _write(self, out: Appender, session: Session, data: bytearray) -> None:
        await asyncio.to_thread(_write_and_hash, out, data, session.hasher)
        self.written += len(data)
        self._notify()

    async def wait_started(self) -> bool:
        """True once bytes are coming (or came); False when the fetch never began."""
        while not (self.started or self.failed or self.done):
            await self._changed.wait()
        return self.started and not (self.failed and self.written == 0 and not self.done)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Send the blob to a client while it arrives; cut the connection if it fails.

        A local root only: the growing upload is a file this process can read."""
        published = self.svc.root.files.path(self.repo, self.digest)
        if self.done:
            return web.FileResponse(published, headers=self._headers())
        response = web.StreamResponse(headers=self._headers())
        if self.size is not None:
            response.content_length = self.size
        try:
            fd = os.open(self.path or published, os.O_RDONLY)
        except FileNotFoundError:
            # Published between our check and the open (a thread renames it).
            await self.task
            if self.done:
                return web.FileResponse(published, headers=self._headers())
            raise
        try:
            await response.prepare(request)
            sent = 0
            while True:
                changed = self._changed
                # The last byte waits for the digest check: wrong bytes never arrive whole.
                allowed = self.written if self.done else max(self.written - 1, 0)
                if allowed > sent:
                    size = min(allowed - sent, SEND)
                    data = await asyncio.to_thread(os.pread, fd, size, sent)
                    if not data:
                        break
                    await response.write(data)
                    sent += len(data)
                    continue
                if self.done:
                    break
                if self.failed:
                    log.error(
                        "sync: cut %s@%s short for the client: %s",
                        self.repo,
                        self.digest,
                        self.failed,
                    )
                    if request.transport is not None:
                        request.transport.abort()
                    return response
                await changed.wait()
            await response.write_eof()
        finally:
            os.close(fd)
        return response

    def _headers(self) -> dict[str, str]:
        return {
            "Docker-Content-Digest": str(self.digest),
            "Content-Type": "application/octet-stream",
        }


class Flights:
    """The blob fetches under way, one per ``(storage root, repository, digest)``."""

    def __init__(self, stats: SyncStats) -> None:
        self.stats = stats
        self._flights: dict[tuple[int, str, str], BlobFlight] = {}

    def join(self, svc: RootServices, repo: str, digest: Digest, sources: Sources) -> BlobFlight:
        key = (id(svc.root), repo, str(digest))
        flight = self._flights.get(key)
        if flight is None or flight.failed:
            flight = BlobFlight(svc, repo, digest, sources, self.stats)
            self._flights[key] = flight
            flight.task.add_done_callback(lambda _: self._forget(key, flight))
        return flight

    def _forget(self, key: tuple[int, str, str], flight: BlobFlight) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]

    async def fetch(self, svc: RootServices, repo: str, digest: Digest, sources: Sources) -> bool:
        """Bring the blob in (or join the flight bringing it); True when it is stored."""
        flight = self.join(svc, repo, digest, sources)
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(flight.task)
        return flight.done

    async def cancel_all(self) -> None:
        flights = list(self._flights.values())
        for flight in flights:
            flight.task.cancel()
        await asyncio.gather(*(f.task for f in flights), return_exceptions=True)
