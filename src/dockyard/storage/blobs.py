"""Blob files of the repositories of one root: publish, link, copy, stat, delete.

Every file appears under its final name in one rename or link, so a reader sees a blob
whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.fsutil import atomic_write, fsync_dir, remove_file
from dockyard.storage.layout import blob_path


class BlobFiles:
    """Byte-level operations on ``ROOT/<repo>/blobs/<alg>/<hex>``."""

    def __init__(self, root: Path, dedupe: bool = True) -> None:
        self.root = root
        self.dedupe = dedupe

    def repo_dir(self, repo: str) -> Path:
        return self.root / repo

    def path(self, repo: str, digest: Digest) -> Path:
        return blob_path(self.repo_dir(repo), digest)

    def stat(self, repo: str, digest: Digest) -> os.stat_result | None:
        try:
            return os.stat(self.path(repo, digest))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def publish(self, repo: str, digest: Digest, src: Path) -> None:
        """Move a verified, fsynced upload file into place under its digest."""
        dest = self.path(repo, digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            remove_file(src)
            return
        os.replace(src, dest)
        fsync_dir(dest.parent)

    def put_bytes(self, repo: str, digest: Digest, data: bytes) -> None:
        """Store small content (a manifest) under its digest."""
        dest = self.path(repo, digest)
        if not dest.exists():
            atomic_write(dest, data)

    def read_bytes(self, repo: str, digest: Digest, limit: int) -> bytes | None:
        """Small content (a manifest), or None when absent or larger than ``limit``."""
        try:
            with open(self.path(repo, digest), "rb") as f:
                data = f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return data if len(data) <= limit else None

    def link_from(self, repo: str, digest: Digest, source_repo: str) -> bool:
        """Make ``source_repo``'s blob appear in ``repo``: a hard link with dedupe, else a copy.

        False when the source does not hold the blob.
        """
        src = self.path(source_repo, digest)
        dest = self.path(repo, digest)
        if dest.exists():
            return True
        if not src.exists():
            return False
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=".link.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if self.dedupe:
                tmp.unlink()
                os.link(src, tmp)
            else:
                shutil.copyfile(src, tmp)
                with open(tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(tmp, dest)
        except FileNotFoundError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        fsync_dir(dest.parent)
        return True

    def delete(self, repo: str, digest: Digest) -> bool:
        return remove_file(self.path(repo, digest))
