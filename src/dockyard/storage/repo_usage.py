"""What one repository occupies: blob bytes, which stored copies, open upload sessions.

A plain function over a repository folder (stat calls only, never a read), for the
metrics extension to run in a worker process. Identities (inodes) are returned so a
caller can tell how many of those bytes are shared with other repositories through dedupe.

The identities travel back to the server as two flat arrays rather than a dict: a
repository of 80,000 files made a dict whose unpickling alone held the server's GIL for
14 ms (more on a busy machine), while an array unpickles as one copy of its bytes.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.storage.backend import StorageBackend
from dockyard.storage.blob_walk import blob_files
from dockyard.storage.paths import uploads_dir


@dataclass
class RepoUsage:
    #: Bytes of every blob file (layers, configs, manifests), as ``du -b`` of the
    #: repository's ``blobs/`` alone would count them.
    apparent: int = 0
    #: The identity (inode) of each blob file, and its size at the same place in
    #: ``sizes``: shared inodes are what dedupe saves.
    inos: array[int] = field(default_factory=lambda: array("Q"))
    sizes: array[int] = field(default_factory=lambda: array("Q"))
    #: Upload sessions in progress (files under ``.uploads/``).
    uploads: int = 0


def repo_usage(backend: StorageBackend, repo_dir: Path) -> RepoUsage:
    usage = RepoUsage()
    for blob in blob_files(backend, repo_dir):
        usage.apparent += blob.size
        usage.inos.append(blob.ino)
        usage.sizes.append(blob.size)
    sessions = backend.list(uploads_dir(repo_dir))
    usage.uploads = sum(1 for e in sessions if not e.name.startswith("."))
    return usage
