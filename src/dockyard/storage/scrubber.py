"""Scrub: re-hash every blob and manifest, and check what every manifest references.

Finds what serving alone cannot: bit rot that leaves a file's size and mtime alone (so its
verified stamp still matches), blobs a manifest needs that are missing or of the wrong
size, manifests and ``index.json`` files that no longer parse. A file whose bytes do not
hash to its name is quarantined (see ``integrity``) unless asked not to, so it is never
served again; a file that does is stamped as verified, so serving it needs no hash.

The heavy work runs in storage's worker process (``workers``), at ``SCHED_IDLE`` priority:
one repository's reference check per task, then one file per hash task, so a GC walk
queued meanwhile waits for one file at most. Identical blobs shared by hard links are
hashed once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage import gc_walk
from dockyard.storage.backend import StorageBackend
from dockyard.storage.blob_walk import BlobFile, blob_files
from dockyard.storage.integrity import hash_stored, quarantine
from dockyard.storage.layout import read_manifest
from dockyard.storage.paths import INDEX_FILE, blob_path
from dockyard.storage.store import RootServices, Store
from dockyard.storage.workers import in_walker

log = logging.getLogger("dockyard.scrub")

CORRUPT, MISSING, SIZE, UNREADABLE = "corrupt", "missing", "size", "unreadable"


@dataclass(frozen=True)
class Problem:
    repo: str
    digest: str
    kind: str  # corrupt | missing | size | unreadable
    detail: str

    def __str__(self) -> str:
        where = f"{self.repo}@{self.digest}" if self.digest else self.repo
        return f"{self.kind} {where}: {self.detail}"


@dataclass
class RepoPlan:
    """One repository's reference check, and the blob files left to hash."""

    problems: list[Problem] = field(default_factory=list)
    manifests: int = 0
    files: list[BlobFile] = field(default_factory=list)


@dataclass
class ScrubReport:
    repos: int = 0
    manifests: int = 0
    blobs: int = 0
    bytes: int = 0
    problems: list[Problem] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    seconds: float = 0.0
    finished_at: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, kind: str) -> int:
        return sum(1 for p in self.problems if p.kind == kind)


# -- worker-side: plain functions over one repository folder ---------------------------------


def _size_problem(
    backend: StorageBackend, repo: str, digest: str, path: Path, size: Any, parent: str
) -> Problem | None:
    """A problem if ``path`` is missing or its size is not the one its parent declares."""
    try:
        st = backend.stat(path)
    except OSError:
        st = None
    if st is None:
        return Problem(repo, digest, MISSING, f"referenced by {parent}, but not in the repository")
    found = st.st_size
    if isinstance(size, int) and not isinstance(size, bool) and size != found:
        return Problem(repo, digest, SIZE, f"{parent} says {size} bytes, the file has {found}")
    return None


def plan_repo(backend: StorageBackend, repo: str, repo_dir_text: str) -> RepoPlan:
    """Check every manifest reachable from ``index.json`` and list the blob files."""
    repo_dir = Path(repo_dir_text)
    plan = RepoPlan()
    try:
        _, listed = gc_walk.read_index(backend, repo_dir)
    except FileNotFoundError:
        listed = []
    except (ValueError, OSError) as exc:
        plan.problems.append(Problem(repo, "", UNREADABLE, f"index.json cannot be read: {exc}"))
        listed = []
    stack: list[tuple[str, Any, str]] = [(d["digest"], d.get("size"), INDEX_FILE) for d in listed]
    seen: set[str] = set()
    while stack:
        digest, size, parent = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        try:
            path = blob_path(repo_dir, Digest.parse(digest))
        except InvalidDigest:
            plan.problems.append(Problem(repo, digest, UNREADABLE, f"{parent} lists a bad digest"))
            continue
        problem = _size_problem(backend, repo, digest, path, size, parent)
        if problem is not None:
            plan.problems.append(problem)
            continue
        manifest = read_manifest(repo_dir, digest, backend)
        if manifest is None:
            plan.problems.append(Problem(repo, digest, UNREADABLE, "manifest cannot be parsed"))
            continue
        plan.manifests += 1
        for desc in manifest.blobs:
            if desc.foreign:
                continue
            blob = str(desc.digest)
            path = blob_path(repo_dir, desc.digest)
            problem = _size_problem(backend, repo, blob, path, desc.size, f"manifest {digest}")
            if problem is not None:
                plan.problems.append(problem)
        stack.extend((str(d.digest), d.size, f"index {digest}") for d in manifest.manifests)
        # A subject may be absent by the spec (a referrer can be pushed before its image).
    plan.files = blob_files(backend, repo_dir)
    return plan


# -- coordinator: runs on the event loop, hands the work to the worker ------------------------


Progress = Callable[[int], None]


@dataclass
class _Hashed:
    """One inode's verdict within a run: hard links to it share it."""

    good: bool
    ino: int
    size: int
    mtime_ns: int


class Scrubber:
    """One scrub pass over a store (or some of its repositories)."""

    def __init__(self, store: Store, *, quarantine: bool = True) -> None:
        self.store = store
        self.quarantine = quarantine

    def _targets(self, repos: list[str] | None) -> list[tuple[RootServices, str]]:
        names = self.store.catalog.names() if repos is None else repos
        return [(self.store.for_repo(name), name) for name in names]

    async def plan(
        self, repos: list[str] | None = None
    ) -> list[tuple[RootServices, str, RepoPlan]]:
        """The reference check of every target repository (cheap: stat and parse only)."""
        await self.store.catalog.load()
        if repos is None and self.store.shared():
            await self.store.current_catalog()  # other replicas' new repositories too
        plans = []
        for services, repo in self._targets(repos):
            root = services.root
            plan = await in_walker(plan_repo, root.backend, repo, str(root.repo_dir(repo)))
            plans.append((services, repo, plan))
        return plans

    async def run(
        self,
        repos: list[str] | None = None,
        *,
        on_total: Progress | None = None,
        on_progress: Progress | None = None,
    ) -> ScrubReport:
        """Scrub; ``on_total`` hears the bytes to hash, ``on_progress`` each file's bytes."""
        started = time.monotonic()
        report = ScrubReport()
        plans = await self.plan(repos)
        if on_total is not None:
            on_total(sum(f.size for _, _, plan in plans for f in plan.files))
        verdicts: dict[tuple[Path, int], _Hashed | None] = {}
        for services, repo, plan in plans:
            report.repos += 1
            report.manifests += plan.manifests
            report.problems += plan.problems
            for blob in plan.files:
                await self._check(services, repo, blob, verdicts, report)
                if on_progress is not None:
                    on_progress(blob.size)
        if repos is None:  # every blob file was seen: stamps of other inodes are stale
            for services in self.store.roots():
                live = {ino for (root, ino) in verdicts if root == services.root.path}
                await asyncio.to_thread(services.root.stamps.prune, live)
        report.seconds = time.monotonic() - started
        report.finished_at = time.time()
        return report

    async def _check(
        self,
        services: RootServices,
        repo: str,
        blob: BlobFile,
        verdicts: dict[tuple[Path, int], _Hashed | None],
        report: ScrubReport,
    ) -> None:
        root = services.root
        digest = Digest.parse(blob.digest)
        key = (root.path, blob.ino)
        if key not in verdicts:
            # Through the backend: a file locally, ranged reads of an object in a bucket.
            result = await in_walker(hash_stored, root.backend, blob.path, digest.algorithm)
            verdicts[key] = None
            if result is not None:
                hexdigest, ino, size, mtime_ns = result
                verdicts[key] = _Hashed(hexdigest == digest.hex, ino, size, mtime_ns)
        verdict = verdicts[key]
        if verdict is None:
            return  # removed meanwhile (GC, a delete): nothing left to judge
        report.blobs += 1
        report.bytes += verdict.size
        if verdict.good:
            st = await root.off_loop(root.backend.stat, blob.path)
            if st is not None and (st.st_ino, st.st_size, st.st_mtime_ns) == (
                verdict.ino,
                verdict.size,
                verdict.mtime_ns,
            ):
                root.stamps.record(st, blob.digest)
            return
        detail = "its bytes do not hash to its digest"
        if self.quarantine:
            async with root.locks.hold(repo):
                moved = await asyncio.to_thread(
                    quarantine, root, repo, digest, verdict.ino, "found by scrub"
                )
            if moved is not None:
                root.events.quarantined(root.path, repo, blob.digest, "found by scrub")
                report.quarantined.append(str(moved))
                detail += f"; moved to {moved}"
        report.problems.append(Problem(repo, blob.digest, CORRUPT, detail))
