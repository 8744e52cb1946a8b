"""The set of repositories in a root, found once by walking folders, then kept current."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Callable
from pathlib import Path

from dockyard.oci.names import InvalidName, validate_name
from dockyard.storage.backend import StorageBackend
from dockyard.storage.localfs import LOCAL
from dockyard.storage.paths import INDEX_FILE, NOT_REPOSITORIES


def find_repositories(root: Path, backend: StorageBackend = LOCAL) -> list[str]:
    """Every folder under ``root`` holding an ``index.json`` whose path is a valid name.

    Only folders are visited, never blob files, so this stays cheap on a large store.
    """
    found: list[str] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        entries = backend.list(folder)
        names = {e.name for e in entries}
        if folder != root and INDEX_FILE in names:
            name = folder.relative_to(root).as_posix()
            with contextlib.suppress(InvalidName):
                found.append(validate_name(name))
        for entry in entries:
            if entry.name in NOT_REPOSITORIES or entry.name[:1] in "._":
                continue
            if entry.is_dir:
                stack.append(entry.path)
    return sorted(found)


class Catalog:
    """Sorted repository names; the walk happens on first use, not at start-up.

    Each root comes with the rule of which names it serves (``subPaths`` routing), so a
    folder left in the wrong root is not listed as if it were served.
    """

    def __init__(self, roots: list[tuple[Path, Callable[[str], bool]]]) -> None:
        self._roots = roots
        self._names: list[str] | None = None

    def _walk(self) -> list[str]:
        names: set[str] = set()
        for root, serves in self._roots:
            names.update(n for n in find_repositories(root) if serves(n))
        return sorted(names)

    def _loaded(self) -> list[str]:
        if self._names is None:
            self._names = self._walk()
        return self._names

    async def load(self) -> None:
        """Walk the roots in a thread, so a large store never stalls the event loop."""
        if self._names is None:
            names = await asyncio.to_thread(self._walk)
            if self._names is None:
                self._names = names

    def add(self, name: str) -> None:
        names = self._loaded()
        at = bisect.bisect_left(names, name)
        if at == len(names) or names[at] != name:
            names.insert(at, name)

    def names(self) -> list[str]:
        """The sorted names; callers must not change the list."""
        return self._loaded()

    def all(self) -> list[str]:
        return list(self._loaded())
