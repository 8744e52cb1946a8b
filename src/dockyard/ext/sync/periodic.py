"""Periodic sync: every ``pollInterval``, copy what each registry's rules cover.

A pass lists the upstream repositories each ``content`` rule covers (the ``_catalog``,
paged, for a glob; the name itself for a prefix without one), keeps the tags that pass
``regex``/``excludeRegex``/``semver``, and copies each image: manifests byte for byte,
every blob, and the referrers the upstream lists. What is already here is compared by
digest and skipped, so a second pass over unchanged images moves no blob bytes. Nothing
is ever deleted. One log line per image; totals in the metrics (``dockyard_sync_*``).

Retries (``maxRetries``, ``retryDelay``): a pass first tries every image once; then each
image that failed is tried again, up to ``maxRetries`` times, each time no sooner than
``retryDelay`` after its own previous failure. An image that keeps failing therefore
never holds up the others, and a pass with failures lasts about ``maxRetries`` times
``retryDelay`` longer, not that times the number of failing images. What still fails is
a warning (the upstream's fault, not dockyard's) and counts in ``dockyard_sync_errors``.
It runs as a background task: blobs stream to disk in threads, never on the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.ext.sync.copy import BeforePut, Refused, copy_manifest
from dockyard.ext.sync.flights import Flights
from dockyard.ext.sync.registries import Registry
from dockyard.ext.sync.rules import Rule, has_glob
from dockyard.ext.sync.sync_stats import SyncStats
from dockyard.ext.sync.upstream import Upstream, UpstreamError
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import Manifest
from dockyard.oci.names import InvalidName, is_tag, validate_name
from dockyard.storage.errors import StorageError
from dockyard.storage.store import RootServices, Store

log = logging.getLogger("dockyard.sync")

#: Called once per image handled, with ``repo:tag``.
Progress = Callable[[str], None] | None


@dataclass
class Image:
    """One upstream image a pass will copy."""

    upstream_name: str
    local: str
    tag: str


@dataclass
class PassReport:
    images: int = 0
    copied: int = 0
    skipped: int = 0
    failed: int = 0
    bytes: int = 0
    #: No URL of the registry answered the listing: nothing was attempted.
    unreachable: bool = False


class PeriodicSync:
    """Runs passes over the registries that have a ``pollInterval``."""

    def __init__(
        self, store: Store, registries: list[Registry], flights: Flights, stats: SyncStats
    ) -> None:
        self.store = store
        self.registries = registries
        self.flights = flights
        self.stats = stats

    def polled(self) -> list[Registry]:
        return [r for r in self.registries if r.settings.poll_interval]

    async def run_forever(self) -> None:
        await asyncio.gather(*(self._poll(r) for r in self.polled()))

    async def _poll(self, registry: Registry) -> None:
        interval = registry.settings.poll_interval or 0.0
        while True:
            try:
                await self.run_pass(registry)
            except Exception:
                log.exception("sync: pass over %s failed", registry.settings.urls)
            await asyncio.sleep(interval)

    async def plan(self, registry: Registry) -> tuple[Upstream, list[Image]] | None:
        """The images a pass over ``registry`` covers, from the first URL that answers."""
        for upstream in registry.upstreams:
            try:
                return upstream, await self._images(upstream, registry.rules)
            except UpstreamError as exc:
                log.warning("sync: cannot list %s: %s", upstream.url, exc)
        return None

    async def _images(self, upstream: Upstream, rules: list[Rule]) -> list[Image]:
        catalog: list[str] | None = None
        images: list[Image] = []
        seen: set[str] = set()
        for rule in rules:
            if has_glob(rule.content.prefix):
                if catalog is None:
                    catalog = [name async for name in upstream.catalog()]
                names = [n for n in catalog if rule.covers(n)]
            else:
                names = [rule.content.prefix]
            for name in names:
                local = rule.local_name(name)
                if local is None or name in seen:
                    continue
                try:
                    validate_name(name)
                except InvalidName:
                    continue
                seen.add(name)
                tags = [t async for t in upstream.tags(name)]
                images += [
                    Image(name, local, t)
                    for t in sorted(set(tags))
                    if is_tag(t) and rule.wants_tag(t)
                ]
        return images

    async def run_pass(
        self,
        registry: Registry,
        progress: Progress = None,
        planned: tuple[Upstream, list[Image]] | None = None,
    ) -> PassReport:
        """One pass; ``planned`` is a listing :meth:`plan` made already (else it is made)."""
        report = PassReport()
        planned = planned or await self.plan(registry)
        if planned is None:
            report.unreachable = True
            return report
        upstream, images = planned
        bytes_before = self.stats.bytes
        report.images = len(images)
        settings = registry.settings
        pending: list[tuple[Image, float, Exception]] = []
        for image in images:
            failure = await self._attempt(upstream, image, report, progress)
            if failure is not None:
                pending.append((image, time.monotonic(), failure))
        for _ in range(settings.max_retries):
            if not pending:
                break
            again: list[tuple[Image, float, Exception]] = []
            for image, failed_at, _exc in pending:
                await asyncio.sleep(max(0.0, failed_at + settings.retry_delay - time.monotonic()))
                failure = await self._attempt(upstream, image, report, progress)
                if failure is not None:
                    again.append((image, time.monotonic(), failure))
            pending = again
        for image, _at, exc in pending:
            report.failed += 1
            self.stats.errors += 1
            log.warning(
                "sync: %s:%s from %s failed after %d attempts: %s",
                image.local,
                image.tag,
                upstream.host,
                settings.max_retries + 1,
                exc,
            )
            if progress is not None:
                progress(f"{image.local}:{image.tag}")
        report.bytes = self.stats.bytes - bytes_before
        self.stats.passes += 1
        log.info(
            "sync: pass over %s: %d images, %d copied, %d up to date, %d failed, %d bytes",
            upstream.url,
            report.images,
            report.copied,
            report.skipped,
            report.failed,
            report.bytes,
        )
        return report

    async def _attempt(
        self, upstream: Upstream, image: Image, report: PassReport, progress: Progress
    ) -> Exception | None:
        """Copy one image once; the failure when it failed (the pass retries it later)."""
        try:
            outcome = await self.copy_image(upstream, image)
        except (UpstreamError, Refused, StorageError) as exc:
            log.info("sync: %s:%s from %s failed: %s", image.local, image.tag, upstream.host, exc)
            return exc
        if outcome == "copied":
            report.copied += 1
        else:
            report.skipped += 1
        if progress is not None:
            progress(f"{image.local}:{image.tag}")
        return None

    async def copy_image(self, upstream: Upstream, image: Image) -> str:
        """Copy one tagged image; "skipped" when the local tag already has its digest."""
        svc = self.store.for_repo(image.local)
        head = await upstream.manifest(image.upstream_name, image.tag, "HEAD")
        if head is None:
            raise UpstreamError(f"{image.upstream_name}:{image.tag} vanished upstream")
        complete = head.digest is not None and await asyncio.to_thread(
            self._complete, svc, image.local, image.tag, head.digest
        )
        if complete:
            log.info("sync: %s:%s up to date (%s)", image.local, image.tag, head.digest)
            return "skipped"
        fetched = await upstream.manifest(image.upstream_name, image.tag)
        if fetched is None:
            raise UpstreamError(f"{image.upstream_name}:{image.tag} vanished upstream")
        moved_before = self.stats.bytes
        sources = [(upstream, image.upstream_name)]

        async def blobs(manifest: Manifest) -> None:
            for desc in manifest.blobs:
                if desc.foreign:
                    continue
                if await self._present(svc, image.local, desc.digest):
                    continue
                if not await self.flights.fetch(svc, image.local, desc.digest, sources):
                    raise UpstreamError(f"blob {desc.digest} could not be copied")

        copied = await copy_manifest(
            upstream, image.upstream_name, svc, image.local, image.tag, fetched, blobs
        )
        await self._referrers(upstream, image, svc, copied.digest, blobs)
        self.stats.images += 1
        self.stats.manifests += len(copied.stored)
        log.info(
            "sync: copied %s:%s (%s) from %s/%s: %d bytes",
            image.local,
            image.tag,
            copied.digest,
            upstream.host,
            image.upstream_name,
            self.stats.bytes - moved_before,
        )
        return "copied"

    async def _referrers(
        self, upstream: Upstream, image: Image, svc: RootServices, digest: str, before: BeforePut
    ) -> None:
        for desc in await upstream.referrers(image.upstream_name, digest):
            ref = desc.get("digest")
            if not isinstance(ref, str):
                continue
            try:
                parsed = Digest.parse(ref)
            except ValueError:
                continue
            if svc.root.files.stat(image.local, parsed) is not None:
                continue
            fetched = await upstream.manifest(image.upstream_name, ref)
            if fetched is not None:
                await copy_manifest(
                    upstream, image.upstream_name, svc, image.local, ref, fetched, before
                )

    async def _present(self, svc: RootServices, repo: str, digest: Digest) -> bool:
        if svc.root.files.stat(repo, digest) is not None:
            return True
        return svc.root.files.dedupe and await svc.blobs.link_any(repo, digest)

    def _complete(self, svc: RootServices, repo: str, tag: str, digest: str) -> bool:
        """The local tag points at ``digest`` and every blob it needs is here (in a thread:
        it reads the index and every manifest of the image)."""
        try:
            if svc.manifests.resolve(repo, tag).digest != digest:
                return False
        except StorageError:
            return False
        pending = [digest]
        while pending:
            manifest = svc.root.load_manifest(repo, pending.pop())
            if manifest is None:
                return False
            pending += [str(d.digest) for d in manifest.manifests]
            for desc in manifest.blobs:
                if not desc.foreign and svc.root.files.stat(repo, desc.digest) is None:
                    return False
        return True
