"""Garbage collection of one repository at a time: orphan blobs, old untagged manifests,
idle upload sessions.

A blob is born orphaned (its manifest arrives after it), so nothing younger than the
root's ``gcDelay`` is removed. Age is the inode's change time, which every link, rename
and unlink bumps: a blob linked into a repository a moment ago is young there even when
its bytes are old. Whatever cannot be decided safely (an unreadable manifest or index, a
failed stat) keeps the content: GC fails closed.

Each pass works on one repository and takes only that repository's lock, and only to
delete: what is reachable is computed without it (in a worker process, see ``gc_walk``),
then the index is checked again under the lock before anything goes.

Nothing here that grows with a repository runs on the event loop: the index rewrite and
the unlinks run in the worker process, the database updates in a thread, and the loop
only hands over and takes back lists of what changed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dockyard.oci.digest import Digest
from dockyard.storage import gc_walk
from dockyard.storage.dedupe import leftover_entries, shared_copies
from dockyard.storage.layout import index_stamp
from dockyard.storage.paths import GC_PASS_KEY, publish_key, session_part_of, uploads_dir
from dockyard.storage.root import StorageRoot
from dockyard.storage.workers import in_walker

_T = TypeVar("_T")

log = logging.getLogger("dockyard.gc")


@dataclass
class GcReport:
    """What one pass removed (or would remove, in a dry run)."""

    blobs: list[tuple[str, str, int]] = field(default_factory=list)  # repo, digest, bytes freed
    manifests: list[tuple[str, str]] = field(default_factory=list)  # repo, digest (untagged)
    uploads: list[tuple[str, str]] = field(default_factory=list)  # repo, session id
    skipped: list[tuple[str, str]] = field(default_factory=list)  # repo, why
    #: Verified stamps of files that vanished other than through GC (periodic pass only).
    stamps_pruned: int = 0
    #: Shared copies (object storage with dedupe) no reference named: digest, bytes freed.
    shared: list[tuple[str, int]] = field(default_factory=list)
    #: Multipart uploads aborted (object storage): "key (upload id)".
    aborted: list[str] = field(default_factory=list)
    #: Entries beside shared copies that named no reference (a crash between the two
    #: writes of a reference, or the two deletes): digest, the reference's path.
    entries: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes_freed(self) -> int:
        return sum(size for _, _, size in self.blobs) + sum(size for _, size in self.shared)

    def merge(self, other: GcReport) -> None:
        self.blobs += other.blobs
        self.manifests += other.manifests
        self.uploads += other.uploads
        self.skipped += other.skipped
        self.stamps_pruned += other.stamps_pruned
        self.shared += other.shared
        self.aborted += other.aborted
        self.entries += other.entries


class Collector:
    """Collects garbage in the repositories of one storage root."""

    def __init__(self, root: StorageRoot, gc_delay: float, retention_delay: float) -> None:
        self.root = root
        self.gc_delay = gc_delay
        self.retention_delay = retention_delay
        self._pending: dict[str, asyncio.Task[GcReport]] = {}

    def _idle_uploads(self, repo: str, now: float, dry_run: bool) -> list[tuple[str, str]]:
        backend, folder = self.root.backend, uploads_dir(self.root.repo_dir(repo))
        entries = backend.list(folder)
        names = {entry.name for entry in entries}
        removed = []
        for entry in entries:
            if entry.is_dir:
                continue  # a session's own parts (object storage): they go with the session
            session_id = session_part_of(entry.name)
            if session_id is None:
                session_id = entry.name
            elif session_id in names:
                continue  # an owner record or a pin goes with its session, below
            try:
                st = backend.stat(entry.path)
            except OSError:
                continue
            if st is None or now - st.st_mtime < self.gc_delay:
                continue
            if self.root.uploads.busy(repo, session_id):
                continue
            if not dry_run:
                self.root.uploads.discard(repo, session_id)
            removed.append((repo, session_id))
        return removed

    async def collect(
        self, repo: str, *, retention: bool = True, uploads: bool = False, dry_run: bool = False
    ) -> GcReport:
        """One pass over ``repo``: retention of untagged manifests, then orphan blobs.

        Passes over a root run one at a time, across worker processes too (the periodic
        pass of the worker holding the lease, and inline passes after deletes in any
        worker): each holds the root's GC lock."""
        async with self.root.locks.hold(GC_PASS_KEY):
            return await self._collect(repo, retention, uploads, dry_run)

    async def _collect(self, repo: str, retention: bool, uploads: bool, dry_run: bool) -> GcReport:
        report = GcReport()
        now = time.time()
        started = time.monotonic()
        repo_dir, backend = self.root.repo_dir(repo), self.root.backend
        if uploads:
            report.uploads += await asyncio.to_thread(self._idle_uploads, repo, now, dry_run)
        try:
            without: frozenset[str] = frozenset()
            if retention:
                _, expired = await in_walker(
                    gc_walk.expired_untagged, backend, repo_dir, now, self.retention_delay
                )
                if dry_run:
                    report.manifests += [(repo, d) for d in expired]
                    without = frozenset(expired)  # show what would go after them
                elif expired:
                    dropped = await self._drop_from_index(repo, frozenset(expired))
                    report.manifests += [(repo, d) for d in dropped]
            for _ in range(3):
                stamp, batches = await in_walker(
                    gc_walk.orphans, backend, repo_dir, now, self.gc_delay, without
                )
                async with self.root.locks.hold(repo) as held:
                    if index_stamp(backend, repo_dir) != stamp:
                        continue  # a push landed meanwhile: decide again
                    for batch in batches:
                        if not dry_run:
                            await held.fence()
                        removed = await in_walker(
                            gc_walk.delete_orphans,
                            backend,
                            self.root.path,
                            repo_dir,
                            batch,
                            self.gc_delay,
                            dry_run,
                        )
                        if not dry_run and removed:
                            await asyncio.to_thread(self._forget_removed, repo, removed)
                        report.blobs += [(repo, digest, freed) for digest, freed, _, _ in removed]
                break
            else:
                report.skipped.append((repo, "index kept changing"))
        except FileNotFoundError:
            pass  # no index.json: nothing was ever published here
        except (ValueError, OSError) as exc:
            log.warning("gc keeps everything in %s: index.json unreadable: %s", repo, exc)
            report.skipped.append((repo, f"index.json unreadable: {exc}"))
        except gc_walk.Undecidable as exc:
            log.warning("gc keeps everything in %s: %s", repo, exc)
            report.skipped.append((repo, str(exc)))
        if not dry_run:
            self.root.events.gc_finished(
                self.root.path,
                repo,
                time.monotonic() - started,
                len(report.blobs),
                len(report.manifests),
                report.bytes_freed,
            )
        return report

    async def _drop_from_index(self, repo: str, digests: frozenset[str]) -> list[str]:
        """Unlist expired untagged manifests; the rewrite runs in the worker process.

        The referrers map needs no word of it: the index's new version makes its next
        query catch up (one set difference), which spares the loop a call per digest.
        """
        repo_dir, backend = self.root.repo_dir(repo), self.root.backend
        async with self.root.locks.hold(repo) as held:
            await held.fence()
            try:
                dropped = await in_walker(gc_walk.drop_untagged, backend, repo_dir, digests)
            finally:
                self.root.layout.forget(repo_dir)
        if dropped:
            self.root.events.repo_changed(self.root.path, repo)
        return dropped

    def _forget_removed(self, repo: str, removed: list[gc_walk.Removed]) -> None:
        """Drop what the databases know of removed blobs (in a thread: it grows with them).

        The dedupe map loses this repository's path; a blob's last link takes its
        verified stamp too, so no database under the root names it any more. The paths
        come ready from the worker process: tens of thousands of path computations here
        would hold the GIL from the event loop (measured: +77 ms on another repository's
        slowest request).
        """
        if self.root.locations is not None:
            self.root.locations.remove_many([(d, rel) for d, _, _, rel in removed])
        last = [(ino, digest) for digest, _, ino, _ in removed if ino is not None]
        if last:
            self.root.stamps.forget_many(last)

    async def collect_root(self, *, dry_run: bool = False) -> GcReport:
        """What the root holds outside its repositories, after a pass over all of them:
        shared copies no reference names any more (object storage with dedupe; see
        ``dedupe.shared_copies``), and multipart uploads left open by a crash.

        Leftover entries (``dedupe.leftover_entries``) go first, so a copy only they named
        is freed in the same pass. Each entry and each shared copy is checked again and
        deleted under its digest's publish lock, fenced like every GC delete; a copy's
        verified stamp goes with it.
        """
        report = GcReport()
        root, backend = self.root, self.root.backend
        async with root.locks.hold(GC_PASS_KEY):
            if backend.by_reference:
                report.entries += await self._sweep_entries(dry_run)
                without = frozenset(report.entries) if dry_run else frozenset()
                picked = await in_walker(
                    shared_copies.unnamed, backend, root.path, time.time(), self.gc_delay, without
                )
                for digest in picked:
                    dropped = await self._under_publish_lock(
                        digest,
                        dry_run,
                        shared_copies.drop_if_unnamed,
                        backend,
                        root.path,
                        digest,
                        self.gc_delay,
                        dry_run,
                        without,
                    )
                    if dropped is None:
                        continue
                    size, ino = dropped
                    report.shared.append((digest, size))
                    if not dry_run:
                        await asyncio.to_thread(root.stamps.forget_many, [(ino, digest)])
            report.aborted += await asyncio.to_thread(
                backend.abort_abandoned_writes, self.gc_delay, dry_run
            )
        return report

    async def _sweep_entries(self, dry_run: bool) -> list[tuple[str, str]]:
        """Drop the entries that name no reference (picked in the worker process, each
        checked again under its digest's publish lock); return those dropped."""
        root, backend = self.root, self.root.backend
        picked = await in_walker(
            leftover_entries.leftovers, backend, root.path, time.time(), self.gc_delay
        )
        dropped = []
        for leftover in picked:
            gone = await self._under_publish_lock(
                leftover[0],
                dry_run,
                leftover_entries.drop_if_leftover,
                backend,
                root.path,
                leftover,
                self.gc_delay,
                dry_run,
            )
            if gone:
                dropped.append(leftover)
        return dropped

    async def _under_publish_lock(
        self, digest: str, dry_run: bool, check_and_drop: Callable[..., _T], *args: Any
    ) -> _T:
        """``check_and_drop(*args)`` in a thread, under ``digest``'s publish lock (fenced
        unless a dry run): every reference to a shared copy is written under that lock,
        so what the call checks cannot change before it deletes."""
        async with self.root.locks.hold(publish_key(Digest.parse(digest))) as held:
            if not dry_run:
                await held.fence()
            return await asyncio.to_thread(check_and_drop, *args)

    async def prune_stamps(self) -> int:
        """Drop the stamps of files gone by other ways than GC (by hand); return how many.

        The walk over the root runs in the worker process, the delete in a thread.
        """
        stale = await in_walker(gc_walk.stale_stamps, self.root.backend, self.root.path)
        if stale:
            await asyncio.to_thread(self.root.stamps.forget_many, stale)
        return len(stale)

    def schedule(self, repo: str) -> None:
        """Run an inline pass soon, once, however many deletes asked for it."""
        if repo in self._pending and not self._pending[repo].done():
            return
        task = asyncio.get_running_loop().create_task(self.collect(repo))
        self._pending[repo] = task
        task.add_done_callback(lambda t: self._pending.pop(repo, None))

    async def stop(self) -> None:
        """Cut scheduled passes short (shutdown): GC is idempotent, the next pass resumes.

        Waiting for them instead kept a stopping server alive for minutes when a pass was
        collecting a large repository.
        """
        while self._pending:
            for task in self._pending.values():
                task.cancel()
            await asyncio.gather(*self._pending.values(), return_exceptions=True)
