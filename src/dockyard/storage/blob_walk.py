"""The one walk over a repository's blob files (``blobs/<alg>/<hex>``).

GC's orphan search, adoption (dedupe), scrub and the usage figures all need the same
thing: every file that is a blob, with its digest, size, identity and age. Temp files and
strays (names that are not a digest) are never blobs. Blocking: run it in a thread or a
worker process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dockyard.storage.backend import StorageBackend
from dockyard.storage.paths import blob_digest, blobs_dir


@dataclass(frozen=True)
class BlobFile:
    """One blob file of a repository, as stat'ed during the walk."""

    digest: str
    path: Path
    size: int
    #: Identity of the stored bytes: names sharing one copy (dedupe) have the same.
    ino: int
    #: How many names the stored bytes have (1: this repository's copy is the only one).
    nlink: int
    #: When this name last changed (a link, rename or unlink bumps it): GC's age.
    changed: float


def blob_files(backend: StorageBackend, repo_dir: Path) -> list[BlobFile]:
    """Every blob file of the repository, in digest order; files gone meanwhile skipped."""
    found = []
    for alg_dir in sorted(backend.list(blobs_dir(repo_dir)), key=lambda e: e.name):
        if not alg_dir.is_dir:
            continue
        for entry in sorted(backend.list(alg_dir.path), key=lambda e: e.name):
            digest = blob_digest(alg_dir.name, entry.name)
            if digest is None or entry.is_dir:
                continue  # temp files and strays are not blobs
            st = backend.stat(entry.path)
            if st is None:
                continue
            found.append(
                BlobFile(str(digest), entry.path, st.st_size, st.st_ino, st.st_nlink, st.st_ctime)
            )
    return found
