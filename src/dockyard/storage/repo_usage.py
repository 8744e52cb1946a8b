"""What one repository occupies on disk: blob bytes, which inodes, open upload sessions.

Plain functions over a folder (stat calls only, never a read), for the metrics extension
to run in a thread. Inodes are returned so a caller can tell how many of those bytes
are shared with other repositories through dedupe's hard links.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.storage.layout import UPLOADS_DIR


@dataclass
class RepoUsage:
    #: Bytes of every file under ``blobs/`` (layers, configs, manifests), as ``du -b``
    #: of the repository alone would count them.
    apparent: int = 0
    #: inode -> size of each blob file: shared inodes are what dedupe saves.
    inodes: dict[int, int] = field(default_factory=dict)
    #: Upload sessions in progress (files under ``.uploads/``).
    uploads: int = 0


def _files(folder: Path) -> list[os.DirEntry[str]]:
    try:
        return [e for e in os.scandir(folder) if not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def repo_usage(repo_dir: Path) -> RepoUsage:
    usage = RepoUsage()
    for alg_dir in _files(repo_dir / "blobs"):
        if not alg_dir.is_dir(follow_symlinks=False):
            continue
        for entry in _files(Path(alg_dir.path)):
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            usage.apparent += st.st_size
            usage.inodes[st.st_ino] = st.st_size
    usage.uploads = len(_files(repo_dir / UPLOADS_DIR))
    return usage
