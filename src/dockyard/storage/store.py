"""The whole store: storage roots (the default one and ``subPaths``) and the catalog.

A repository belongs to the root of the longest ``subPaths`` prefix matching its first
path component (zot's routing rule), else to the default root.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from dockyard.oci.digest import Digest
from dockyard.storage.catalog import Catalog
from dockyard.storage.coordination import BackgroundLease, Coordination
from dockyard.storage.dedupe.adopt import ADOPTED, adopt_root
from dockyard.storage.errors import StorageError
from dockyard.storage.events import StorageEvents
from dockyard.storage.gc import Collector, GcReport
from dockyard.storage.lease import Lease
from dockyard.storage.manifests import RepoManifests
from dockyard.storage.paths import leader_path
from dockyard.storage.repo_blobs import RepoBlobs
from dockyard.storage.root import RootSettings, StorageRoot, backend_of
from dockyard.storage.upload_pool import UploadPool
from dockyard.util.plural import count

log = logging.getLogger("dockyard.store")

#: Seconds between two looks for a shared dedupe map that lost its contents.
ADOPT_RECHECK_SECONDS = 5.0
Progress = Callable[[str], None] | None
#: The longest pause between two tries of the start-up walk while storage does not answer.
CATALOG_RETRY_MAX = 30.0


def _first(name: str) -> str:
    return name.split("/", 1)[0]


def _starts_with(prefix: str) -> Callable[[str], bool]:
    return lambda name: _first(name) == prefix


@dataclass
class RootServices:
    """A storage root and the services acting on it."""

    root: StorageRoot
    blobs: RepoBlobs
    manifests: RepoManifests
    #: None when the root's ``gc`` switch is off: nothing is ever deleted on its own.
    collector: Collector | None


class Store:
    """Routes each repository to its storage root."""

    def __init__(
        self,
        default: RootSettings,
        sub_paths: dict[str, RootSettings] | None = None,
        *,
        read_only: bool = False,
        shared: Callable[[str], Coordination | None] | None = None,
    ):
        """``read_only``: the roots are looked at, never written (see ``StorageRoot``).

        ``shared``: the coordination of each root across replicas, by ``subPaths`` prefix
        ("" for the default root); None, or None for a root: this machine's own."""
        self._read_only = read_only
        self._shared = shared or (lambda prefix: None)
        #: Upload threads and admission, shared by every root, closed with the store.
        self.upload_pool = UploadPool()
        sub_paths = {prefix.strip("/"): s for prefix, s in (sub_paths or {}).items()}
        #: One backend per root, shared by the root and the catalog's walk.
        self._backends = {s.root: backend_of(s) for s in (default, *sub_paths.values())}
        self.catalog = Catalog(
            [
                (default.root, lambda name: _first(name) not in sub_paths),
                *((s.root, _starts_with(prefix)) for prefix, s in sub_paths.items()),
            ],
            self._backends,
        )
        self.default = self._services(default, "")
        self.sub_paths = {prefix: self._services(s, prefix) for prefix, s in sub_paths.items()}
        for services in self.roots():
            root = services.root
            if root.coordination is not None and root.remote:
                # Other replicas create repositories in this bucket out of this one's sight.
                self.catalog.validate_with(root.path, root.changes.seen)
        #: Set when settings change while serving (config reload): wakes the periodic GC.
        self.settings_changed = asyncio.Event()
        #: Which worker process (or replica) runs the periodic jobs (see ``storage.lease``).
        coordination = self.default.root.coordination
        self.lease: BackgroundLease
        if coordination is not None:
            self.lease = coordination.lease
        else:
            self.lease = Lease(None if read_only else leader_path(default.root))

    def observe(self, events: StorageEvents) -> None:
        """Report the work of every root to ``events`` (the metrics extension)."""
        for services in self.roots():
            services.root.observe(events)

    def _services(self, settings: RootSettings, prefix: str) -> RootServices:
        root = StorageRoot(
            settings,
            self._repo_created,
            self.upload_pool,
            read_only=self._read_only,
            coordination=None if self._read_only else self._shared(prefix),
            backend=self._backends[settings.root],
        )
        manifests = RepoManifests(root)
        collector = None
        if settings.gc:
            collector = Collector(root, settings.gc_delay, settings.retention_delay)
            manifests.on_unreferenced = collector.schedule
        return RootServices(root, RepoBlobs(root), manifests, collector)

    def close(self) -> None:
        """Release what the store holds: upload threads, the roots' databases."""
        self.upload_pool.close()
        self.lease.release()
        for services in self.roots():
            services.root.close()
            if services.root.coordination is not None:
                services.root.coordination.close()

    def _repo_created(self, repo: str) -> None:
        self.catalog.add(repo)

    def for_repo(self, repo: str) -> RootServices:
        return self.sub_paths.get(_first(repo), self.default)

    def roots(self) -> list[RootServices]:
        return [self.default, *self.sub_paths.values()]

    def repos_of(self, services: RootServices) -> list[str]:
        return [name for name in self.catalog.names() if self.for_repo(name) is services]

    async def collect_all(self, dry_run: bool = False, progress: Progress = None) -> GcReport:
        """One full pass over every repository of every root whose GC is on."""
        await self.current_catalog()
        report = GcReport()
        for services in self.roots():
            if services.collector is None:
                continue
            for repo in self.repos_of(services):
                report.merge(
                    await services.collector.collect(
                        repo, retention=True, uploads=True, dry_run=dry_run
                    )
                )
                if progress is not None:
                    progress(repo)
            report.merge(await services.collector.collect_root(dry_run=dry_run))
            if not dry_run:
                report.stamps_pruned += await services.collector.prune_stamps()
        return report

    def shared(self) -> list[StorageRoot]:
        """The roots coordinated with other replicas (through Redis)."""
        return [s.root for s in self.roots() if s.root.coordination is not None]

    async def refresh(self) -> None:
        """Fetch the shared change counters: a request's caches are then as current as the
        last write any replica acknowledged (Unavailable when Redis does not answer).

        One root after the other, awaited directly: this runs on every request, and
        ``gather`` would make a task per root each time (one Redis is the usual case)."""
        for root in self.shared():
            await root.changes.refresh()

    async def current_catalog(self) -> list[str]:
        """The catalog, validated against the shared counters fetched now (a background
        job has no request whose refresh it could rely on)."""
        await self.refresh()
        return await self.catalog.current()

    async def publish(self) -> None:
        """Send the changes made here to the shared counters, before an answer leaves."""
        for root in self.shared():
            await root.changes.publish()

    async def adopt_forever(self) -> None:
        """Adoption (below), then, with a shared map, again whenever the map lost its
        "adopted" mark: a ``FLUSHALL`` or a new empty Redis is rebuilt from the files."""
        while True:
            try:
                await self.adopt_all()
            except StorageError as exc:  # Unavailable: Redis is down, try again later
                log.warning("dedupe adoption postponed: %s", exc.message)
            if not self.shared():
                return
            await asyncio.sleep(ADOPT_RECHECK_SECONDS)

    async def wait_for_catalog(self) -> None:
        """Walk the roots for the catalog, trying again until storage answers.

        A bucket that does not answer yet (an outage, a bucket still being created) is
        what ``/readyz`` reports meanwhile; the server must not give up its start-up.
        """
        pause = 1.0
        while True:
            try:
                await self.catalog.load()
                return
            except Exception as exc:  # an unreadable folder, an object store's client error
                log.warning(
                    "the repositories cannot be listed yet (%s); trying again in %gs", exc, pause
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, CATALOG_RETRY_MAX)

    async def adopt_all(self) -> None:
        """Link duplicates of roots never deduplicated before (first start on a root)."""
        await self.wait_for_catalog()
        for services in self.roots():
            root = services.root
            locations = root.locations
            if locations is None:
                continue
            adopted: str | None = await asyncio.to_thread(locations.get_meta, ADOPTED)
            if adopted:
                continue
            repo_dirs = [root.repo_dir(repo) for repo in self.repos_of(services)]
            saved = await adopt_root(root, locations, repo_dirs)
            log.info("dedupe adopted %s: %d bytes saved", services.root.path, saved)

    async def collect_forever(self) -> None:
        """The periodic pass (``gcInterval``), one repository at a time.

        Idle while every root's GC is off. Settings are read again each round, and a
        change (config reload) restarts the wait with the new interval.
        """
        while True:
            interval = min(s.root.settings.gc_interval for s in self.roots())
            self.settings_changed.clear()
            try:
                await asyncio.wait_for(self.settings_changed.wait(), interval)
                continue
            except TimeoutError:
                pass
            if all(s.collector is None for s in self.roots()):
                continue
            try:
                report = await self.collect_all()
            except Exception:
                log.exception("periodic gc failed")
                continue
            if (
                report.blobs
                or report.manifests
                or report.uploads
                or report.stamps_pruned
                or report.shared
                or report.aborted
                or report.entries
            ):
                log.info(
                    "gc removed %s, %s (%s), %s, %s, %s, %s, %s",
                    count(len(report.blobs), "blob"),
                    count(len(report.shared), "shared copy", "shared copies"),
                    count(
                        len(report.entries),
                        "leftover reference entry",
                        "leftover reference entries",
                    ),
                    count(report.bytes_freed, "byte"),
                    count(len(report.manifests), "manifest"),
                    count(len(report.uploads), "upload"),
                    count(len(report.aborted), "abandoned multipart upload"),
                    count(report.stamps_pruned, "stale verified stamp"),
                )

    async def mount(
        self,
        repo: str,
        digest: Digest,
        source: str | None,
        source_ok: Callable[[str], bool] | None = None,
    ) -> bool:
        """Make a blob another repository holds appear in ``repo`` without an upload.

        With no ``source``, any repository of the same root will do (of those
        ``source_ok`` accepts: the ones the caller may read). Across roots there is no
        link to make: the caller answers with a fresh upload session instead.
        """
        target = self.for_repo(repo)
        if source is not None:
            if source_ok is not None and not source_ok(source):
                return False
            if self.for_repo(source) is not target:
                return False
            return await target.blobs.link_from(repo, digest, source)
        if await target.root.off_loop(target.root.files.stat, repo, digest) is not None:
            return True
        if target.root.files.dedupe:
            return await target.blobs.link_any(repo, digest, source_ok)
        for candidate in self.catalog.names():
            same_root = candidate != repo and self.for_repo(candidate) is target
            if source_ok is not None and not source_ok(candidate):
                continue
            if same_root and await target.blobs.link_from(repo, digest, candidate):
                return True
        return False
