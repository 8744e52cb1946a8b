"""Which repositories changed behind this process's back: written by another worker.

A cache fed by this process's own storage events (the search index, the usage figures)
misses the writes of the other worker processes. Those show as a move of a root's change
counter (``storage.changes``); only then does :meth:`ChangeWatch.stale` compare each
repository's ``index.json`` stamp with the one recorded when the cache last read it: a
``stat`` per repository, meant for a thread, once per burst of changes.
"""

from __future__ import annotations

from pathlib import Path

from dockyard.storage.layout import index_stamp
from dockyard.storage.store import Store

Stamp = tuple[int, int, int] | None


class ChangeWatch:
    """The stamps a cache read, and the change counters it last saw."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen: dict[Path, bytes] = {}
        self._stamps: dict[str, Stamp] = {}

    def moved(self) -> set[Path]:
        """The roots whose change counter moved since the last call (on the loop: cheap)."""
        moved = set()
        for services in self.store.roots():
            root = services.root
            seen = root.changes.seen()
            if self._seen.get(root.path) != seen:
                self._seen[root.path] = seen  # before the look: a later change moves it again
                moved.add(root.path)
        return moved

    def record(self, name: str) -> None:
        """Note the stamp of ``name``'s index; call it *before* reading the repository, so
        a change in between is found by the next look."""
        root = self.store.for_repo(name).root
        self._stamps[name] = index_stamp(root.backend, root.repo_dir(name))

    def stale(self, names: list[str], roots: set[Path]) -> list[str]:
        """In a thread: the repositories of ``roots`` whose index is not the one recorded."""
        stale = []
        for name in names:
            root = self.store.for_repo(name).root
            if root.path in roots and (
                index_stamp(root.backend, root.repo_dir(name)) != self._stamps.get(name)
            ):
                stale.append(name)
        return stale
