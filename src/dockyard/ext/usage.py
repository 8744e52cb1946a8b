"""Storage bytes per repository and bytes saved by dedupe, kept current for metrics.

A scrape must never walk the store: on a root of 10,000 repositories that is seconds of
stat calls per scrape. So the numbers are cached here. One walk fills the cache after
start-up; after that only repositories that a request changed (a push, a delete, a mount,
a GC pass) are walked again, at most once a second each, and a full walk every
``FULL_EVERY`` seconds catches what changed behind the server's back (``dockyard gc``,
a hand edit). Dedupe savings are kept incrementally from each repository's inodes.

Nothing here that grows with a repository runs on the event loop: the walks run in
storage's worker processes (``storage.workers``; a thread would still hold the GIL for
the walk's pure-Python part), and the inode bookkeeping in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dockyard.storage.change_watch import ChangeWatch
from dockyard.storage.repo_usage import RepoUsage, repo_usage
from dockyard.storage.store import Store
from dockyard.storage.workers import in_walker

log = logging.getLogger("dockyard.metrics")

#: Seconds between full walks (changes made by other processes show up by then).
FULL_EVERY = 600.0
#: Seconds a change waits before its repository is walked, so a burst costs one walk.
DEBOUNCE = 1.0


@dataclass
class _RootTotals:
    apparent: int = 0
    unique: int = 0


class UsageTracker:
    """Cached per-repository usage of every root of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._repos: dict[tuple[Path, str], RepoUsage] = {}
        #: Per root: inode -> [how many repositories link it, its size].
        self._inodes: dict[Path, dict[int, list[int]]] = {}
        self._totals: dict[Path, _RootTotals] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        #: The writes of other worker processes, which never call ``mark`` here.
        self._watch = ChangeWatch(store)

    def mark(self, repo: str) -> None:
        """``repo`` changed: walk it again soon."""
        self._dirty.add(repo)
        self._wake.set()

    def repos(self) -> Iterator[tuple[Path, str, RepoUsage]]:
        for (root, repo), usage in list(self._repos.items()):
            yield root, repo, usage

    def saved(self) -> Iterator[tuple[Path, int]]:
        """Bytes dedupe saves per root: what the repositories hold minus distinct inodes."""
        for root, totals in self._totals.items():
            yield root, totals.apparent - totals.unique

    def _set(self, root: Path, repo: str, usage: RepoUsage | None) -> None:
        """Swap ``repo``'s figures for ``usage``; in a thread, as it goes over every inode.

        Only the tracker's own task calls it, one at a time. Scrapes on the loop read
        ``_repos`` and ``_totals``: each changes by one dict assignment, a new totals
        object built aside, so a scrape never sees half an update.
        """
        inodes = self._inodes.setdefault(root, {})
        old_totals = self._totals.get(root, _RootTotals())
        apparent, unique = old_totals.apparent, old_totals.unique
        old = self._repos.get((root, repo))
        if old is not None:
            apparent -= old.apparent
            for ino in old.inos:
                ref = inodes[ino]
                ref[0] -= 1
                if not ref[0]:
                    unique -= ref[1]
                    del inodes[ino]
        if usage is not None:
            apparent += usage.apparent
            for ino, size in zip(usage.inos, usage.sizes, strict=True):
                ref = inodes.setdefault(ino, [0, size])
                if not ref[0]:
                    unique += size
                ref[0] += 1
            self._repos[(root, repo)] = usage
        else:
            self._repos.pop((root, repo), None)
        self._totals[root] = _RootTotals(apparent, unique)

    async def _walk(self, repos: list[str]) -> None:
        for repo in repos:
            self._watch.record(repo)
            root = self.store.for_repo(repo).root
            usage = await in_walker(repo_usage, root.backend, root.repo_dir(repo))
            exists = usage.apparent or usage.uploads or root.repo_dir(repo).is_dir()
            await asyncio.to_thread(self._set, root.path, repo, usage if exists else None)

    async def _walk_all(self) -> None:
        await self.store.catalog.load()
        names = self.store.catalog.all()
        gone = {repo for _, repo in self._repos} - set(names)
        await self._walk(names + sorted(gone))

    async def run(self) -> None:
        """Fill the cache, then keep it current until cancelled."""
        await self._walk_all()
        self._watch.moved()  # the walk saw everything up to here
        loop = asyncio.get_running_loop()
        next_full = loop.time() + FULL_EVERY
        while True:
            wait = max(0.0, min(next_full - loop.time(), DEBOUNCE))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            try:
                moved = self._watch.moved()  # other workers' writes: no mark reaches here
                if moved:
                    names = self.store.catalog.all()
                    self._dirty.update(await asyncio.to_thread(self._watch.stale, names, moved))
                if not self._dirty and loop.time() < next_full:
                    continue
                await asyncio.sleep(DEBOUNCE)
                self._wake.clear()
                if loop.time() >= next_full:
                    next_full = loop.time() + FULL_EVERY
                    self._dirty.clear()
                    await self._walk_all()
                else:
                    dirty, self._dirty = sorted(self._dirty), set()
                    await self._walk(dirty)
            except Exception:
                log.exception("storage usage walk failed")
