"""The set of repositories in a root, found once by walking folders, then kept current."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from dockyard.oci.names import InvalidName, validate_name
from dockyard.private import FILE_MODE, private_folder
from dockyard.storage.backend import StorageBackend
from dockyard.storage.localfs import LOCAL
from dockyard.storage.paths import INDEX_FILE, NOT_REPOSITORIES, repositories_log


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

    Worker processes share the roots: a repository one of them creates is appended (one
    line, ``O_APPEND``, before its first write is acknowledged) to the root's log of new
    repositories, and every catalog reads the lines past what it has seen, a ``stat``
    per root per look, never a walk. The walk records where each log ended before it
    started, so a repository created during the walk is read from the log again.

    Replicas on one bucket do not share that log (each has its own local folder). For a
    root whose layouts are remote and whose change counter is shared (Redis), the list
    is a per-replica cache validated by that counter: :meth:`current` walks the bucket
    again (in a thread) when the counter moved since the last walk, so a repository
    another replica created is listed on the next request, and nothing is trusted
    blindly (a ``FLUSHALL`` moves the counter's epoch, which is a move too).
    """

    def __init__(
        self,
        roots: list[tuple[Path, Callable[[str], bool]]],
        backends: dict[Path, StorageBackend] | None = None,
    ) -> None:
        """``backends``: where each root's layouts live (the local disk when absent)."""
        self._roots = roots
        self._backends = backends or {}
        self._names: list[str] | None = None
        #: Per root: how far its log of new repositories has been read.
        self._read: dict[Path, int] = {}
        #: Per root shared with other replicas: its change counter's current value.
        self._counters: dict[Path, Callable[[], bytes]] = {}
        #: Per such root: the counter's value when the names were last walked.
        self._walked_at: dict[Path, bytes] = {}
        self._rewalk: asyncio.Lock | None = None

    def validate_with(self, root: Path, counter: Callable[[], bytes]) -> None:
        """Trust ``root``'s names only while ``counter()`` answers what it did at the
        last walk (a root whose new repositories other replicas create out of sight)."""
        self._counters[root] = counter

    def _stale(self) -> bool:
        return any(self._walked_at.get(root) != seen() for root, seen in self._counters.items())

    async def current(self) -> list[str]:
        """:meth:`names`, walked again first if a shared root's counter moved since the
        last walk (call it after the request's counter refresh). Concurrent callers share
        one walk; a walk records the counters it started at, so a change made during the
        walk makes the next call walk again."""
        if self._names is None or self._stale():
            if self._rewalk is None:
                self._rewalk = asyncio.Lock()
            async with self._rewalk:
                if self._names is None or self._stale():
                    at = {root: seen() for root, seen in self._counters.items()}
                    names, ends = await asyncio.to_thread(self._walk)
                    self._names, self._read, self._walked_at = names, ends, at
        return self.names()

    def _walk(self) -> tuple[list[str], dict[Path, int]]:
        ends = {root: _size(repositories_log(root)) for root, _ in self._roots}
        names: set[str] = set()
        for root, serves in self._roots:
            names.update(
                n for n in find_repositories(root, self._backends.get(root, LOCAL)) if serves(n)
            )
        return sorted(names), ends

    def _loaded(self) -> list[str]:
        if self._names is None:
            self._names, self._read = self._walk()
        self._catch_up()
        return self._names

    def _catch_up(self) -> None:
        """Add the names other workers logged since the last look."""
        for root, serves in self._roots:
            log = repositories_log(root)
            at = self._read.get(root, 0)
            if _size(log) <= at:
                continue
            with contextlib.suppress(OSError), open(log, "rb") as f:
                f.seek(at)
                data = f.read()
                whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits
                self._read[root] = at + len(whole)
                for line in whole.decode(errors="replace").splitlines():
                    with contextlib.suppress(InvalidName):
                        if serves(validate_name(line)):
                            self._insert(line)

    async def load(self) -> None:
        """Walk the roots in a thread, so a large store never stalls the event loop."""
        if self._names is None:
            at = {root: seen() for root, seen in self._counters.items()}
            names, ends = await asyncio.to_thread(self._walk)
            if self._names is None:
                self._names, self._read, self._walked_at = names, ends, at

    def _insert(self, name: str) -> None:
        assert self._names is not None
        names = self._names
        at = bisect.bisect_left(names, name)
        if at == len(names) or names[at] != name:
            names.insert(at, name)

    def add(self, name: str) -> None:
        """A repository this process created: listed here at once, and logged for the
        other workers."""
        for root, serves in self._roots:
            if serves(name):
                _append_line(repositories_log(root), name)
                break
        if self._names is not None:
            self._insert(name)

    def names(self) -> list[str]:
        """The sorted names; callers must not change the list."""
        return self._loaded()

    def all(self) -> list[str]:
        return list(self._loaded())


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _append_line(path: Path, line: str) -> None:
    """One ``write`` in ``O_APPEND``: lines of several processes never interleave."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except FileNotFoundError:  # a read-only look, or the private folder is not there yet
        private_folder(path.parent)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)
