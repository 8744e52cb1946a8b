"""The heavy half of GC, as plain functions over one repository folder.

They read manifests and stat files and nothing else of the server's state, so they run in
a worker process: a walk over a repository with tens of thousands of manifests parses
JSON for seconds, and in the server's own process that would take the GIL from every
request being served (measured: p99 of manifest GETs 38x worse during such a walk).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage.layout import INDEX_FILE, LayoutIO, RepoIndex, blob_path, read_manifest


class Undecidable(Exception):
    """A listed manifest cannot be read: what it references is unknown, so keep all."""


def _age(path: Path, now: float) -> float | None:
    """Seconds since the inode last changed; None when it cannot be told (keep it)."""
    try:
        return now - os.stat(path).st_ctime
    except OSError:
        return None


def reachable_from(repo_dir: Path, digests: list[str], seen: set[str]) -> None:
    """Add every manifest and blob reachable from ``digests`` to ``seen``."""
    stack = list(digests)
    while stack:
        digest = stack.pop()
        if digest in seen:
            continue
        seen.add(digest)
        manifest = read_manifest(repo_dir, digest)
        if manifest is None:
            try:
                exists = blob_path(repo_dir, Digest.parse(digest)).exists()
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


def read_index(repo_dir: Path) -> tuple[Stamp, list[dict[str, Any]]]:
    """The repository's index entries and the file stamp they were read at.

    Read here rather than passed in: pickling tens of thousands of entries would run in the
    server process and hold its GIL, the very stall this module exists to avoid.
    """
    stamp = LayoutIO.stamp(repo_dir)
    if stamp is None:
        raise FileNotFoundError(repo_dir / INDEX_FILE)
    return stamp, RepoIndex.load((repo_dir / INDEX_FILE).read_bytes()).manifests


def expired_untagged(repo_dir: Path, now: float, delay: float) -> tuple[Stamp, list[str]]:
    """Untagged manifests older than the retention delay that nothing kept needs.

    Kept: everything reachable from a tag, referrers (signatures, SBOMs) whose subject is
    kept, and untagged manifests younger than the delay with what they reach.
    """
    stamp, manifests = read_index(repo_dir)
    tagged = [d["digest"] for d in manifests if RepoIndex.tag_of(d)]
    untagged = [d["digest"] for d in manifests if not RepoIndex.tag_of(d)]
    kept: set[str] = set()
    reachable_from(repo_dir, tagged, kept)
    changed = True
    while changed:
        changed = False
        for digest in untagged:
            if digest in kept:
                continue
            manifest = read_manifest(repo_dir, digest)
            subject = str(manifest.subject.digest) if manifest and manifest.subject else None
            age = _age(blob_path(repo_dir, Digest.parse(digest)), now)
            young = age is None or age < delay
            if young or (subject is not None and subject in kept):
                reachable_from(repo_dir, [digest], kept)
                changed = True
    return stamp, [d for d in untagged if d not in kept]


def orphans(
    repo_dir: Path, now: float, gc_delay: float, without: frozenset[str] = frozenset()
) -> tuple[Stamp, list[str]]:
    """Blob files nothing listed reaches (``without`` left out), older than the delay."""
    stamp, listed = read_index(repo_dir)
    manifests = [d for d in listed if d["digest"] not in without]
    reachable: set[str] = set()
    reachable_from(repo_dir, [d["digest"] for d in manifests], reachable)
    found: list[str] = []
    blobs_dir = repo_dir / "blobs"
    for alg_dir in blobs_dir.iterdir() if blobs_dir.is_dir() else ():
        for path in alg_dir.iterdir() if alg_dir.is_dir() else ():
            digest = f"{alg_dir.name}:{path.name}"
            if digest in reachable:
                continue
            try:
                Digest.parse(digest)
            except InvalidDigest:
                continue  # temp files and strays are not blobs
            age = _age(path, now)
            if age is not None and age >= gc_delay:
                found.append(digest)
    return stamp, found


def delete_orphans(
    repo_dir: Path, digests: list[str], gc_delay: float, dry_run: bool
) -> list[tuple[str, int]]:
    """Unlink the picked orphans still old enough; return (digest, bytes freed) of each."""
    now = time.time()
    removed = []
    for digest in digests:
        path = blob_path(repo_dir, Digest.parse(digest))
        try:
            st = os.stat(path)
        except OSError:
            continue
        if now - st.st_ctime < gc_delay:
            continue  # linked again since it was picked
        freed = st.st_size if st.st_nlink == 1 else 0
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
        removed.append((digest, freed))
    return removed
