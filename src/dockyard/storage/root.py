"""One storage root: its folder, its settings, and the parts that act on it."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from dockyard.oci.manifest import Manifest
from dockyard.private import private_folder
from dockyard.storage.backend import StorageBackend
from dockyard.storage.blobs import BlobFiles
from dockyard.storage.changes import ChangeCounter, open_counter
from dockyard.storage.coordination import Changes, Coordination, KeyLocks
from dockyard.storage.dedupe.locations import LocationMap
from dockyard.storage.dedupe.sharing import Dedupe
from dockyard.storage.errors import NameUnknown
from dockyard.storage.events import NO_EVENTS, Fanout, StorageEvents
from dockyard.storage.layout import LayoutIO, RepoIndex, read_manifest
from dockyard.storage.localfs import LOCAL
from dockyard.storage.locks import KeyedLocks
from dockyard.storage.offload import run_blocking
from dockyard.storage.paths import index_path, locks_dir
from dockyard.storage.referrers import Referrers
from dockyard.storage.stamps import VerifiedStamps
from dockyard.storage.upload_pool import UploadPool
from dockyard.storage.uploads import Uploads

if TYPE_CHECKING:
    from dockyard.storage.s3settings import S3Settings

_T = TypeVar("_T")
_P = ParamSpec("_P")


@dataclass(frozen=True)
class RootSettings:
    """The per-root switches of zot's ``storage`` section (also each ``subPaths`` entry)."""

    root: Path
    dedupe: bool = True
    gc: bool = True
    gc_delay: float = 3600.0
    gc_interval: float = 3600.0
    retention_delay: float = 24 * 3600.0
    #: Where the OCI layouts live when not under ``root`` (zot's ``storageDriver``);
    #: ``root`` then holds only the root's private state (locks, databases, counters).
    s3: S3Settings | None = None


def backend_of(settings: RootSettings) -> StorageBackend:
    """The backend a root's settings name: the local disk, or a bucket."""
    if settings.s3 is None:
        return LOCAL
    # boto3 is imported only by a process that serves a root on S3.
    from dockyard.storage.s3backend import S3Backend

    return S3Backend(settings.s3, settings.root)


class StorageRoot:
    """Repositories under one directory, sharing locks, uploads and blob files."""

    def __init__(
        self,
        settings: RootSettings,
        on_new_repo: Callable[[str], None],
        upload_pool: UploadPool,
        *,
        read_only: bool = False,
        backend: StorageBackend | None = None,
        coordination: Coordination | None = None,
    ) -> None:
        """``read_only``: for a look that must not write (``gc --dry-run``): the root is not
        created, the dedupe map is not opened, and stamps are kept in memory only.

        ``coordination``: the locks, change counter and dedupe map shared with other
        replicas (Redis); None: those of this machine, under the root's private folder."""
        self.settings = settings
        self.path = settings.root
        self.backend = backend = backend_of(settings) if backend is None else backend
        #: The layouts are not files here (object storage): calls that are a cheap
        #: ``stat`` locally are network round trips, so they go to a thread.
        self.remote = backend.local_file(self.path) is None
        if not read_only:
            backend.make_dirs(self.path)
        #: Bumped by every ``index.json`` write, read by every cache of the root.
        self.changes: Changes
        if coordination is not None:
            self.changes = coordination.changes
        else:
            self.changes = ChangeCounter() if read_only else open_counter(self.path)
        self.layout = LayoutIO(backend, self.changes)
        #: Dedupe of this root (see ``storage.dedupe``); its map is ``locations``.
        enabled = settings.dedupe and not read_only
        if coordination is not None:
            self.dedupe = Dedupe(self.path, backend, enabled, coordination.open_map)
        else:
            self.dedupe = Dedupe(self.path, backend, enabled)
        self.files = BlobFiles(self.path, backend, self.dedupe)
        #: Which blob files were hashed and matched their digest (see ``stamps``).
        self.stamps = VerifiedStamps(self.path, in_memory=read_only)
        self.files.stamps = self.stamps
        self.events: StorageEvents = NO_EVENTS
        self.uploads = Uploads(
            self.path, backend, upload_pool, coordination.locks if coordination else None
        )
        #: Cross-process (flock) unless read-only: worker processes share the root; with
        #: ``coordination``, across replicas (Redis).
        self.locks: KeyLocks
        if coordination is not None:
            self.locks = coordination.locks
        else:
            self.locks = KeyedLocks(None if read_only else self.path)
            if not read_only:
                private_folder(locks_dir(self.path))
        self.coordination = coordination
        self.referrers = Referrers(self.load_manifest)
        #: The folder of each recent repository, one Path object each: joining paths is
        #: a tenth of a manifest GET's own work, and a kept Path hashes once.
        path = self.path

        def join(repo: str) -> Path:
            return path / repo

        self._repo_dirs: Callable[[str], Path] = functools.lru_cache(maxsize=4096)(join)
        self._on_new_repo = on_new_repo

    @property
    def locations(self) -> LocationMap | None:
        """The dedupe map while dedupe is on, else None."""
        return self.dedupe.locations

    def close(self) -> None:
        """Close the root's databases (the store is shutting down)."""
        self.dedupe.close()
        self.stamps.close()
        self.changes.close()

    def observe(self, events: StorageEvents) -> None:
        """Report this root's work (lock waits, GC, quarantines, changes) to ``events``.

        Observers add up: metrics and the search index may both watch a root.
        """
        self.events = events if self.events is NO_EVENTS else Fanout(self.events, events)
        self.locks.on_wait = self.events.lock_waited

    async def off_loop(self, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """A blocking call of this root: inline locally, in a thread on object storage."""
        return await run_blocking(self.remote, call, *args, **kwargs)

    def repo_dir(self, repo: str) -> Path:
        return self._repo_dirs(repo)

    def index(self, repo: str) -> RepoIndex:
        """The repository's ``index.json``; NameUnknown when the repository does not exist."""
        index = self.layout.read(self.repo_dir(repo))
        if index is None:
            raise NameUnknown(f"repository {repo!r} is not known", {"name": repo})
        return index

    async def read_index(self, repo: str) -> RepoIndex:
        """:meth:`index` for the event loop: a changed ``index.json`` is parsed in a thread.

        The cached parse is returned at once while it is current, so a manifest GET costs
        the loop a stat at most; a repository that just changed (a push, a GC pass) is
        re-read aside, so a large one never holds up requests to the others.
        """
        if not self.remote:  # on object storage even the cache's check is a round trip
            index = self.layout.cached(self.repo_dir(repo))
            if index is not None:
                return index
        return await asyncio.to_thread(lambda: self.index(repo).prepare())

    def require(self, repo: str) -> None:
        """NameUnknown unless the repository exists: a stat, never a parse."""
        if not self.backend.exists(index_path(self.repo_dir(repo))):
            raise NameUnknown(f"repository {repo!r} is not known", {"name": repo})

    def ensure_repo(self, repo: str) -> None:
        """Create the repository's OCI layout on its first write."""
        if self.layout.init(self.repo_dir(repo)):
            self._on_new_repo(repo)

    def load_manifest(self, repo: str, digest: str) -> Manifest | None:
        """Parse a stored manifest, or None when it is absent or not a manifest."""
        return read_manifest(self.repo_dir(repo), digest, self.backend)
