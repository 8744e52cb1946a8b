"""On-demand pull-through: a read of missing content fetches it from an upstream.

Installed as the API's :class:`~dockyard.web.mirror.MissHook`. Only registries with
``onDemand: true`` (and distribution's ``proxy``) take part, only for names one of their
``content`` rules covers, and upstream URLs are tried in order. The access guard runs
before any handler, so a fetch happens only for a caller who may read the local name.

- A manifest is fetched once however many clients ask at the same time, verified and
  stored byte for byte (an index with its child manifests), then served from the store.
  Its blobs follow in the background, so the repository becomes a complete OCI layout.
- A blob GET joins (or starts) the one flight for that blob and streams while it lands.
  A blob HEAD asks the upstream and stores nothing.
- Tags: a local tag is served locally. Once ``tagTTL`` has passed since it was last
  compared (dockyard's key, default 5 minutes), the next read first asks the upstream
  for the tag's digest with a HEAD; if it moved, the new manifest is fetched and the tag
  moves too. An upstream that is down leaves the local tag as it is.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from dockyard.ext.sync.copy import Refused, copy_manifest, first_manifest
from dockyard.ext.sync.flights import Flights
from dockyard.ext.sync.registries import Registry
from dockyard.ext.sync.sync_stats import SyncStats
from dockyard.ext.sync.upstream import Upstream, UpstreamError
from dockyard.oci.digest import Digest
from dockyard.oci.names import is_tag
from dockyard.storage.errors import StorageError
from dockyard.storage.store import RootServices
from dockyard.web.mirror import STORED, Stored

log = logging.getLogger("dockyard.sync")


class OnDemand:
    """The miss hook: fetch what a reader asks for and the store lacks."""

    def __init__(self, registries: list[Registry], flights: Flights, stats: SyncStats) -> None:
        self.registries = [r for r in registries if r.settings.on_demand]
        self.flights = flights
        self.stats = stats
        self._manifests: dict[tuple[str, str], asyncio.Task[bool]] = {}
        #: (repository, tag) -> when its digest was last compared with the upstream's.
        self._checked: dict[tuple[str, str], float] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def _covering(self, name: str) -> tuple[Registry, list[tuple[Upstream, str]]] | None:
        for registry in self.registries:
            sources = registry.sources_for(name)
            if sources:
                return registry, sources
        return None

    async def manifest(self, svc: RootServices, name: str, reference: str) -> bool:
        if ":" not in reference and not is_tag(reference):
            return False
        covering = self._covering(name)
        if covering is None:
            return False
        key = (name, reference)
        task = self._manifests.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch_manifest(svc, name, reference, covering[1]))
            self._manifests[key] = task
            task.add_done_callback(lambda _: self._manifests.pop(key, None))
        return await asyncio.shield(task)

    async def _fetch_manifest(
        self, svc: RootServices, name: str, reference: str, sources: list[tuple[Upstream, str]]
    ) -> bool:
        found = await first_manifest(sources, reference)
        if found is None:
            log.info("sync: %s:%s is on no upstream (or none answered)", name, reference)
            return False
        upstream, upstream_name, fetched = found
        try:
            copied = await copy_manifest(upstream, upstream_name, svc, name, reference, fetched)
        except Refused as exc:
            # Content that is not what it claims: a hostile or broken upstream.
            self.stats.refused += 1
            log.error("sync: refused %s:%s from %s: %s", name, reference, upstream.host, exc)
            return False
        except (UpstreamError, StorageError) as exc:
            # The upstream failed half way (down, 5xx): its fault, and the next read retries.
            log.warning(
                "sync: fetching %s:%s from %s failed: %s", name, reference, upstream.host, exc
            )
            return False
        if ":" not in reference:
            self._checked[(name, reference)] = time.monotonic()
        self.stats.on_demand += 1
        self.stats.manifests += len(copied.stored)
        log.info(
            "sync: fetched %s:%s (%s) from %s on demand",
            name,
            reference,
            copied.digest,
            upstream.host,
        )
        self._spawn(self._fill(svc, name, copied.manifest.blobs, copied.digest, sources))
        return True

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fill(
        self,
        svc: RootServices,
        name: str,
        blobs: tuple[Any, ...],
        digest: str,
        sources: list[tuple[Upstream, str]],
    ) -> None:
        """Off the request path: the manifest's blobs and its referrers."""
        for desc in blobs:
            if desc.foreign or svc.root.files.stat(name, desc.digest) is not None:
                continue
            self.flights.join(svc, name, desc.digest, sources)
        for upstream, upstream_name in sources[:1]:
            try:
                referrers = await upstream.referrers(upstream_name, digest)
            except UpstreamError:
                return
            for desc in referrers:
                ref = desc.get("digest")
                if isinstance(ref, str):
                    await self.manifest(svc, name, ref)

    async def refresh(self, svc: RootServices, name: str, reference: str) -> None:
        if ":" in reference or not is_tag(reference):
            return
        covering = self._covering(name)
        if covering is None:
            return
        registry, sources = covering
        key = (name, reference)
        now = time.monotonic()
        last = self._checked.get(key)
        if last is not None and now - last < registry.settings.tag_ttl:
            return
        try:
            local = await svc.manifests.find(name, reference)
        except StorageError:
            return  # missing: the miss path fetches it
        self._checked[key] = now
        found = await first_manifest(sources, reference, method="HEAD")
        if found is None or not found[2].digest or found[2].digest == local.digest:
            return
        log.info("sync: %s:%s moved upstream to %s; fetching", name, reference, found[2].digest)
        await self.manifest(svc, name, reference)

    async def blob(
        self, request: web.Request, svc: RootServices, name: str, digest: Digest
    ) -> web.StreamResponse | Stored | None:
        covering = self._covering(name)
        if covering is None:
            return None
        sources = covering[1]
        if request.method == "HEAD":
            return await self._head(sources, digest)
        if svc.root.remote:
            # In a bucket an upload is not readable while it grows: the whole blob is
            # fetched and published, then served as any stored blob.
            return STORED if await self.flights.fetch(svc, name, digest, sources) else None
        flight = self.flights.join(svc, name, digest, sources)
        if not await flight.wait_started():
            return None
        return await flight.stream(request)

    async def _head(
        self, sources: list[tuple[Upstream, str]], digest: Digest
    ) -> web.StreamResponse | None:
        for upstream, upstream_name in sources:
            try:
                resp = await upstream.blob(upstream_name, str(digest), method="HEAD")
            except UpstreamError as exc:
                log.warning("sync: %s", exc)
                continue
            if resp is None:
                continue
            length = resp.headers.get("Content-Length", "")
            resp.release()
            headers = {
                "Docker-Content-Digest": str(digest),
                "Content-Type": "application/octet-stream",
            }
            if length.isdigit():
                headers["Content-Length"] = length
            return web.Response(headers=headers)
        return None

    async def close(self) -> None:
        for task in list(self._background) + list(self._manifests.values()):
            task.cancel()
        await asyncio.gather(*self._background, *self._manifests.values(), return_exceptions=True)
