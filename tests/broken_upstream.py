"""A deliberately broken upstream registry, for the mirror's fault tests.

An aiohttp server on loopback, run in a thread of the test process, that serves
distribution-spec reads from a table the test fills in, and can misbehave on purpose:
blobs whose bytes do not match their digest, manifests whose announced digest lies,
blobs that stop half way until the test opens a gate, repositories whose manifests fail
(503) a set number of times before they work. It counts every request and notes when it
came, so a test can tell how often, and how far apart, the mirror asked.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from aiohttp import web
from conftest import free_port


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Blob:
    #: What is sent; ``digest`` is what it claims to be.
    data: bytes
    #: Bytes sent before waiting for the gate (None: send everything at once).
    pause_after: int | None = None


@dataclass
class BrokenUpstream:
    port: int = field(default_factory=free_port)
    manifests: dict[tuple[str, str], tuple[bytes, str, str]] = field(default_factory=dict)
    blobs: dict[tuple[str, str], Blob] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    #: When each request came (``time.monotonic()``), by the same keys as ``requests``.
    times: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    #: ``repository`` or ``repository:reference`` -> how many more manifest requests
    #: (GET or HEAD) for it answer 503.
    failures: Counter[str] = field(default_factory=Counter)
    loop: asyncio.AbstractEventLoop | None = None
    gate: asyncio.Event | None = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_manifest(
        self, repo: str, ref: str, body: bytes, media_type: str, announced: str | None = None
    ) -> str:
        digest = announced or digest_of(body)
        self.manifests[(repo, ref)] = (body, media_type, digest)
        self.manifests[(repo, digest_of(body))] = (body, media_type, digest)
        return digest_of(body)

    def open_gate(self) -> None:
        assert self.loop is not None and self.gate is not None
        self.loop.call_soon_threadsafe(self.gate.set)

    async def _base(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def _count(self, what: str) -> None:
        self.requests[what] += 1
        self.times[what].append(time.monotonic())

    async def _tags(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._count(f"GET tags {name}")
        tags = sorted(ref for repo, ref in self.manifests if repo == name and ":" not in ref)
        if not tags:
            return web.json_response({"errors": [{"code": "NAME_UNKNOWN"}]}, status=404)
        return web.json_response({"name": name, "tags": tags})

    async def _manifest(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["name"], request.match_info["ref"])
        self._count(f"{request.method} manifest {key[0]}:{key[1]}")
        for failing in (key[0], f"{key[0]}:{key[1]}"):
            if self.failures[failing] > 0:
                self.failures[failing] -= 1
                return web.json_response({"errors": [{"code": "UNAVAILABLE"}]}, status=503)
        found = self.manifests.get(key)
        if found is None:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN"}]}, status=404)
        body, media_type, digest = found
        headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
        return web.Response(body=body, headers=headers)

    async def _blob(self, request: web.Request) -> web.StreamResponse:
        key = (request.match_info["name"], request.match_info["digest"])
        self._count(f"{request.method} blob {key[1]}")
        blob = self.blobs.get(key)
        if blob is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        response = web.StreamResponse(headers={"Docker-Content-Digest": key[1]})
        response.content_length = len(blob.data)
        await response.prepare(request)
        if request.method == "HEAD":
            return response
        first = blob.data if blob.pause_after is None else blob.data[: blob.pause_after]
        await response.write(first)
        if blob.pause_after is not None:
            assert self.gate is not None
            await self.gate.wait()
            await response.write(blob.data[blob.pause_after :])
        await response.write_eof()
        return response

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/v2/", self._base)
        app.router.add_get("/v2/{name:.+}/tags/list", self._tags)
        app.router.add_get("/v2/{name:.+}/manifests/{ref}", self._manifest)
        app.router.add_get("/v2/{name:.+}/blobs/{digest}", self._blob)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self.loop = asyncio.get_running_loop()
        self.gate = asyncio.Event()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def start(self) -> None:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "broken upstream did not start"

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
