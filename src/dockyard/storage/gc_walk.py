"""The heavy half of GC, as plain functions over one repository folder.

They read manifests and stat files through the storage backend and nothing else of the
server's state, so they run in a worker process: a walk over a repository with tens of
thousands of manifests parses JSON for seconds, and in the server's own process that
would take the GIL from every request being served. The backend (stateless) travels with
each call.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage.backend import StorageBackend
from dockyard.storage.blob_walk import blob_files
from dockyard.storage.layout import RepoIndex, index_stamp, read_manifest
from dockyard.storage.paths import (
    BLOBS_DIR,
    PRIVATE_DIR,
    blob_path,
    index_path,
    shared_blobs_dir,
    stamps_db,
)


class Undecidable(Exception):
    """A listed manifest cannot be read: what it references is unknown, so keep all."""


def _age(backend: StorageBackend, path: Path, now: float) -> float | None:
    """Seconds since the name last changed; None when it cannot be told (keep it)."""
    try:
        st = backend.stat(path)
    except OSError:
        return None
    return None if st is None else now - st.st_ctime


def reachable_from(
    backend: StorageBackend, repo_dir: Path, digests: list[str], seen: set[str]
) -> None:
    """Add every manifest and blob reachable from ``digests`` to ``seen``."""
    stack = list(digests)
    while stack:
        digest = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        manifest = read_manifest(repo_dir, digest, backend)
        if manifest is None:
            try:
                exists = backend.exists(blob_path(repo_dir, Digest.parse(digest)))
            except InvalidDigest:
                exists = False
            if exists:
                raise Undecidable(f"manifest {digest} cannot be parsed")
            continue
        seen.update(str(d.digest) for d in manifest.blobs)
        stack.extend(str(d.digest) for d in manifest.manifests)
        if manifest.subject is not None:
            stack.append(str(manifest.subject.digest))


Stamp = tuple[int, int, int]


def read_index(backend: StorageBackend, repo_dir: Path) -> tuple[Stamp, list[dict[str, Any]]]:
    """The repository's index entries and the file stamp they were read at.

    Read here rather than passed in: pickling tens of thousands of entries would run in the
    server process and hold its GIL, the very stall this module exists to avoid.
    """
    stamp = index_stamp(backend, repo_dir)
    if stamp is None:
        raise FileNotFoundError(index_path(repo_dir))
    return stamp, RepoIndex.load(backend.read_bytes(index_path(repo_dir))).manifests


def expired_untagged(
    backend: StorageBackend, repo_dir: Path, now: float, delay: float
) -> tuple[Stamp, list[str]]:
    """Untagged manifests older than the retention delay that nothing kept needs.

    Kept: everything reachable from a tag, referrers (signatures, SBOMs) whose subject is
    kept, and untagged manifests younger than the delay with what they reach.
    """
    stamp, manifests = read_index(backend, repo_dir)
    tagged = [d["digest"] for d in manifests if RepoIndex.tag_of(d)]
    untagged = [d["digest"] for d in manifests if not RepoIndex.tag_of(d)]
    kept: set[str] = set()
    reachable_from(backend, repo_dir, tagged, kept)
    changed = True
    while changed:
        changed = False
        for digest in untagged:
            if digest in kept:
                continue
            manifest = read_manifest(repo_dir, digest, backend)
            subject = str(manifest.subject.digest) if manifest and manifest.subject else None
            age = _age(backend, blob_path(repo_dir, Digest.parse(digest)), now)
            young = age is None or age < delay
            if young or (subject is not None and subject in kept):
                reachable_from(backend, repo_dir, [digest], kept)
                changed = True
    return stamp, [d for d in untagged if d not in kept]


def drop_untagged(backend: StorageBackend, repo_dir: Path, digests: frozenset[str]) -> list[str]:
    """Rewrite ``index.json`` without the entries of ``digests``; return those dropped.

    Called under the repository's lock (no other writer), on the index as it is now: a
    digest a push tagged since it was found expired stays. One pass over the entries, in
    this process: a repository of 20,000 manifests costs the server nothing (measured
    before: 0.7 s and 1.4 s stalls of every request, when this ran on the event loop).
    The write is crash-safe as every index write: temp file, fsync, rename.
    """
    index = RepoIndex.load(backend.read_bytes(index_path(repo_dir)))
    tagged = {d["digest"] for d in index.manifests if RepoIndex.tag_of(d)}
    drop = digests - tagged
    kept = [d for d in index.manifests if d["digest"] not in drop]
    if len(kept) == len(index.manifests):
        return []
    dropped = sorted({d["digest"] for d in index.manifests} & drop)
    backend.write_atomic(index_path(repo_dir), RepoIndex(kept, index.extra).dump())
    return dropped


#: Orphans go back and forth between the server and this process in batches of this
#: many: the server unpickles each answer while holding its GIL, and 40,000 removed
#: blobs in one answer held it for 30 ms (70 ms added to another repository's slowest
#: request on a busy machine); a batch takes under a millisecond.
DELETE_BATCH = 1000
#: A batch of digests, one per line: a string pickles and unpickles as one copy.
Batch = str


def orphans(
    backend: StorageBackend,
    repo_dir: Path,
    now: float,
    gc_delay: float,
    without: frozenset[str] = frozenset(),
) -> tuple[Stamp, list[str]]:
    """Blob files nothing listed reaches (``without`` left out), older than the delay,
    in batches for ``delete_orphans``."""
    stamp, listed = read_index(backend, repo_dir)
    manifests = [d for d in listed if d["digest"] not in without]
    reachable: set[str] = set()
    reachable_from(backend, repo_dir, [d["digest"] for d in manifests], reachable)
    picked = [
        blob.digest
        for blob in blob_files(backend, repo_dir)
        if blob.digest not in reachable and now - blob.changed >= gc_delay
    ]
    return stamp, [
        "\n".join(picked[at : at + DELETE_BATCH]) for at in range(0, len(picked), DELETE_BATCH)
    ]


#: What ``delete_orphans`` reports per blob: digest, bytes freed, the inode when this was
#: its last link (its verified stamp goes with it) else None, and its path relative to the
#: root (the dedupe map's key), worked out here so the server spends no time on paths.
Removed = tuple[str, int, int | None, str]


def delete_orphans(
    backend: StorageBackend,
    root: Path,
    repo_dir: Path,
    batch: Batch,
    gc_delay: float,
    dry_run: bool,
) -> list[Removed]:
    """Unlink one batch of picked orphans, those still old enough; say what each freed."""
    now = time.time()
    removed: list[Removed] = []
    for digest in batch.split("\n"):
        path = blob_path(repo_dir, Digest.parse(digest))
        try:
            st = backend.stat(path)
        except OSError:
            continue
        if st is None or now - st.st_ctime < gc_delay:
            continue  # linked again since it was picked
        last = st.st_nlink == 1
        if not dry_run and not backend.delete(path):
            continue
        relative = path.relative_to(root).as_posix()
        removed.append((digest, st.st_size if last else 0, st.st_ino if last else None, relative))
    return removed


def live_inodes(backend: StorageBackend, root: Path) -> set[int]:
    """Identities of every blob file under the root (``<repo>/blobs/<alg>/<hex>``, and
    the shared copies of object storage, which its references' stamps are keyed by).

    The listing carries each name's identity, so this costs no stat per file.
    """
    found: set[int] = set()
    stack = [root, shared_blobs_dir(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = backend.list(folder)
        except OSError:
            continue  # vanished meanwhile: nothing of it is live
        in_blobs = folder.parent.name == BLOBS_DIR
        for entry in entries:
            if entry.name.startswith("."):
                continue  # .uploads, temp files: not blobs
            if folder == root and entry.name == PRIVATE_DIR:
                continue
            if entry.is_dir:
                stack.append(entry.path)
            elif in_blobs:
                found.add(entry.ino)
    return found


def stale_stamps(backend: StorageBackend, root: Path) -> list[tuple[int, str]]:
    """(inode, digest) of the verified stamps whose file no longer exists under the root.

    The stamps are read before the walk, so a blob published meanwhile (stamped after its
    file is in place) is never taken for stale. Only the stale keys go back to the server:
    after the first pass they are as many as files vanished since, not the whole store.
    """
    path = stamps_db(root)  # SQLite: local by nature, beside the root (see private.py)
    if not path.exists():
        return []
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            known = db.execute("SELECT ino, digest FROM verified").fetchall()
        finally:
            db.close()
    except sqlite3.Error:
        return []  # a lost prune costs nothing; the next pass tries again
    live = live_inodes(backend, root)
    return [(int(ino), str(digest)) for ino, digest in known if ino not in live]
