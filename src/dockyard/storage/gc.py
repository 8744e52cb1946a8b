"""Garbage collection of one repository at a time: orphan blobs, old untagged manifests,
idle upload sessions.

A blob is born orphaned (its manifest arrives after it), so nothing younger than the
root's ``gcDelay`` is removed. Age is the inode's change time, which every link, rename
and unlink bumps: a blob linked into a repository a moment ago is young there even when
its bytes are old. Whatever cannot be decided safely (an unreadable manifest, a failed
stat) keeps the content: GC fails closed.

Each pass works on one repository and takes only that repository's lock, and only to
delete: computing what is reachable happens without it, then is checked again under it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage.layout import UPLOADS_DIR, RepoIndex
from dockyard.storage.root import StorageRoot

log = logging.getLogger("dockyard.gc")


class Undecidable(Exception):
    """A listed manifest cannot be read: what it references is unknown, so keep all."""


@dataclass
class GcReport:
    """What one pass removed (or would remove, in a dry run)."""

    blobs: list[tuple[str, str, int]] = field(default_factory=list)  # repo, digest, bytes freed
    manifests: list[tuple[str, str]] = field(default_factory=list)  # repo, digest (untagged)
    uploads: list[tuple[str, str]] = field(default_factory=list)  # repo, session id
    skipped: list[tuple[str, str]] = field(default_factory=list)  # repo, why

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, _, size in self.blobs)

    def merge(self, other: GcReport) -> None:
        self.blobs += other.blobs
        self.manifests += other.manifests
        self.uploads += other.uploads
        self.skipped += other.skipped


def _age(path: Path, now: float) -> float | None:
    """Seconds since the inode last changed; None when it cannot be told (keep it)."""
    try:
        return now - os.stat(path).st_ctime
    except OSError:
        return None


class Collector:
    """Collects garbage in the repositories of one storage root."""

    def __init__(self, root: StorageRoot, gc_delay: float, retention_delay: float) -> None:
        self.root = root
        self.gc_delay = gc_delay
        self.retention_delay = retention_delay
        self._pending: dict[str, asyncio.Task[GcReport]] = {}

    # -- what is reachable ------------------------------------------------------------

    def _reachable_from(self, repo: str, digests: list[str], seen: set[str]) -> None:
        """Add every manifest and blob reachable from ``digests`` to ``seen``."""
        files = self.root.files
        stack = list(digests)
        while stack:
            digest = stack.pop()
            if digest in seen:
                continue
            seen.add(digest)
            manifest = self.root.load_manifest(repo, digest)
            if manifest is None:
                try:
                    exists = files.stat(repo, Digest.parse(digest)) is not None
                except InvalidDigest:
                    exists = False
                if exists:
                    raise Undecidable(f"{repo}: manifest {digest} cannot be parsed")
                continue
            seen.update(str(d.digest) for d in manifest.blobs)
            stack.extend(str(d.digest) for d in manifest.manifests)
            if manifest.subject is not None:
                stack.append(str(manifest.subject.digest))

    def reachable(self, repo: str, index: RepoIndex) -> set[str]:
        seen: set[str] = set()
        self._reachable_from(repo, [d["digest"] for d in index.manifests], seen)
        return seen

    # -- retention of untagged manifests --------------------------------------------

    def _expired_untagged(self, repo: str, index: RepoIndex, now: float) -> list[str]:
        """Untagged manifests older than the retention delay that nothing kept needs.

        Kept: everything reachable from a tag, referrers (signatures, SBOMs) whose subject
        is kept, and untagged manifests younger than the delay with what they reach.
        """
        tagged = [d["digest"] for d in index.manifests if RepoIndex.tag_of(d)]
        untagged = [d["digest"] for d in index.manifests if not RepoIndex.tag_of(d)]
        kept: set[str] = set()
        self._reachable_from(repo, tagged, kept)
        changed = True
        while changed:
            changed = False
            for digest in untagged:
                if digest in kept:
                    continue
                manifest = self.root.load_manifest(repo, digest)
                subject = str(manifest.subject.digest) if manifest and manifest.subject else None
                age = _age(self.root.files.path(repo, Digest.parse(digest)), now)
                young = age is None or age < self.retention_delay
                if young or (subject is not None and subject in kept):
                    self._reachable_from(repo, [digest], kept)
                    changed = True
        return [d for d in untagged if d not in kept]

    # -- one pass -----------------------------------------------------------------------

    def _orphans(self, repo: str, reachable: set[str], now: float) -> list[tuple[Digest, Path]]:
        blobs_dir = self.root.repo_dir(repo) / "blobs"
        found: list[tuple[Digest, Path]] = []
        for alg_dir in blobs_dir.iterdir() if blobs_dir.is_dir() else ():
            for path in alg_dir.iterdir() if alg_dir.is_dir() else ():
                try:
                    digest = Digest.parse(f"{alg_dir.name}:{path.name}")
                except InvalidDigest:
                    continue  # temp files and strays are not blobs
                if str(digest) in reachable:
                    continue
                age = _age(path, now)
                if age is not None and age >= self.gc_delay:
                    found.append((digest, path))
        return found

    def _delete_orphans(
        self, repo: str, orphans: list[tuple[Digest, Path]], now: float, dry_run: bool
    ) -> list[tuple[str, str, int]]:
        removed = []
        for digest, path in orphans:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if now - st.st_ctime < self.gc_delay:
                continue  # linked again since it was picked
            freed = st.st_size if st.st_nlink == 1 else 0
            if dry_run or self.root.files.delete(repo, digest):
                removed.append((repo, str(digest), freed))
        return removed

    def _idle_uploads(self, repo: str, now: float, dry_run: bool) -> list[tuple[str, str]]:
        folder = self.root.repo_dir(repo) / UPLOADS_DIR
        removed = []
        for path in folder.iterdir() if folder.is_dir() else ():
            try:
                idle = now - os.stat(path).st_mtime
            except OSError:
                continue
            if idle < self.gc_delay or self.root.uploads.busy(repo, path.name):
                continue
            if not dry_run:
                self.root.uploads.discard(repo, path.name)
            removed.append((repo, path.name))
        return removed

    async def collect(
        self, repo: str, *, retention: bool = False, uploads: bool = False, dry_run: bool = False
    ) -> GcReport:
        """One pass over ``repo``. Inline passes skip retention and uploads."""
        report = GcReport()
        now = time.time()
        base = self.root.layout.read(self.root.repo_dir(repo))
        if base is None:
            return report
        try:
            view = base  # what reachability is computed from; a dry run edits a copy
            if retention:
                expired = await asyncio.to_thread(self._expired_untagged, repo, base, now)
                report.manifests += [(repo, d) for d in expired]
                if expired and dry_run:
                    view = base.copy()
                    for digest in expired:
                        view.remove_digest(digest)
                elif expired:
                    await self._drop_from_index(repo, set(expired))
                    base = view = self.root.index(repo)
            for _ in range(3):
                reachable = await asyncio.to_thread(self.reachable, repo, view)
                orphans = await asyncio.to_thread(self._orphans, repo, reachable, now)
                async with self.root.locks.hold(repo):
                    current = self.root.layout.read(self.root.repo_dir(repo))
                    if current is not base:
                        base = view = current or RepoIndex()
                        continue  # a push landed meanwhile: decide again
                    report.blobs += await asyncio.to_thread(
                        self._delete_orphans, repo, orphans, now, dry_run
                    )
                    break
            else:
                report.skipped.append((repo, "index kept changing"))
        except Undecidable as exc:
            log.warning("gc keeps everything in %s: %s", repo, exc)
            report.skipped.append((repo, str(exc)))
        if uploads:
            report.uploads += await asyncio.to_thread(self._idle_uploads, repo, now, dry_run)
        return report

    async def _drop_from_index(self, repo: str, digests: set[str]) -> None:
        async with self.root.locks.hold(repo):
            index = self.root.index(repo).copy()
            for digest in digests:
                if not any(RepoIndex.tag_of(d) for d in index.manifests if d["digest"] == digest):
                    index.remove_digest(digest)
                    self.root.referrers.removed(repo, digest)
            await asyncio.to_thread(self.root.layout.write, self.root.repo_dir(repo), index)

    def schedule(self, repo: str) -> None:
        """Run an inline pass soon, once, however many deletes asked for it."""
        if repo in self._pending and not self._pending[repo].done():
            return
        task = asyncio.get_running_loop().create_task(self.collect(repo))
        self._pending[repo] = task
        task.add_done_callback(lambda t: self._pending.pop(repo, None))

    async def drain(self) -> None:
        """Wait for scheduled passes (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
