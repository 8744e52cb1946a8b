"""The search index: every repository's :class:`RepoMeta`, in memory, kept current.

Built at start-up in worker threads (after the catalog walk), then updated on each
``repo_changed`` storage event (push, tag move, delete, GC): the changed repository is
read again in a thread and its record swapped in. Queries never touch storage.

The map is copy-on-write: an update builds a new dict and replaces the reference, so a
query running in a thread iterates a snapshot that no update can change under it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

from dockyard.storage.change_watch import ChangeWatch
from dockyard.storage.events import StorageEvents
from dockyard.storage.store import Store

from .records import RepoMeta
from .repo_reader import load_repo
from .snapshot import Snapshot

log = logging.getLogger("dockyard.search")

#: Repositories read per worker-thread call at start-up: big enough to amortise the hop,
#: small enough that live updates interleave with the initial build.
_BATCH = 256


class SearchIndex(StorageEvents):
    """Repository name -> record, plus the work queue that keeps it current."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._repos: dict[str, RepoMeta] = {}
        self._snapshot = Snapshot(self._repos)
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        #: Changes reported so far, and how many of them the published map reflects.
        self._reported = 0
        self._applied = 0
        #: Set (then replaced) each time the published map moves forward.
        self._progress = asyncio.Event()
        self.ready = False
        #: The writes of other worker processes (see ``_catch_up``).
        self._watch = ChangeWatch(store)

    # -- storage events (on the event loop) --------------------------------------------

    def repo_changed(self, root: Path, repo: str) -> None:
        self._dirty.add(repo)
        self._reported += 1
        self._wake.set()

    # -- queries -----------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The current version; never mutated after it is handed out."""
        return self._snapshot

    async def settled(self) -> None:
        """Wait for the initial build and for the changes reported before this call.

        A search sent after a push was answered sees it (read-your-writes). Changes that
        arrive while waiting are not waited for, so steady pushes never starve a search.
        """
        if self.ready:
            await self._catch_up()
        target = self._reported
        while not self.ready or self._applied < target:
            await self._progress.wait()

    async def _catch_up(self) -> None:
        """Report the repositories another worker process changed (see ``ChangeWatch``)."""
        moved = self._watch.moved()
        if not moved:
            return
        names = [n for n in self.store.catalog.all() if n not in self._dirty]
        for name in await asyncio.to_thread(self._watch.stale, names, moved):
            self.repo_changed(self.store.for_repo(name).root.path, name)

    def _advance(self, applied: int) -> None:
        self._applied = applied
        self._progress.set()
        self._progress = asyncio.Event()

    # -- maintenance -------------------------------------------------------------------

    def _load_many(self, names: list[str], base: dict[str, RepoMeta]) -> dict[str, RepoMeta]:
        """In a worker thread: read each repository and return the next map.

        The copy of the map (as big as the store) is made here, not on the event loop;
        only this index's one worker ever builds a map, so ``base`` is always current.
        """
        repos = dict(base)
        for name in names:
            root = self.store.for_repo(name).root
            self._watch.record(name)
            try:
                meta = load_repo(root, name, base.get(name))
            except Exception:  # one broken repository must not stop the index
                log.exception("search could not index %s", name)
                continue
            if meta is None:
                repos.pop(name, None)
            else:
                repos[name] = meta
        return repos

    def _publish(self, repos: dict[str, RepoMeta]) -> None:
        self._repos = repos
        self._snapshot = Snapshot(repos)

    async def run(self) -> None:
        """Build the index, then apply changes as they are reported, until cancelled."""
        await self.store.catalog.load()
        names = self.store.catalog.all()
        for start in range(0, len(names), _BATCH):
            batch = names[start : start + _BATCH]
            self._publish(await asyncio.to_thread(self._load_many, batch, self._repos))
        self.ready = True
        # The records just built live as long as the process (until their repository
        # changes): keep the cyclic GC from re-scanning them on every full collection,
        # which on 10,000 repositories is a pause of tens of milliseconds per query.
        gc.freeze()
        log.info("search index built: %d repositories", len(self._repos))
        self._advance(0)
        while True:
            if not self._dirty:
                self._wake.clear()
                await self._wake.wait()
                continue
            target = self._reported
            names = sorted(self._dirty)
            self._dirty.clear()
            for start in range(0, len(names), _BATCH):
                batch = names[start : start + _BATCH]
                self._publish(await asyncio.to_thread(self._load_many, batch, self._repos))
            self._advance(target)
