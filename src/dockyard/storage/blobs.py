"""Blob files of the repositories of one root: publish, link, copy, stat, delete.

Every file appears under its final name in one rename, so a reader sees a blob whole or
not at all. With dedupe on, identical blobs of different repositories are hard links to
one inode, found through the durable :class:`BlobLocations` map. Hard links are all equal:
no copy is "the original", so deleting any of them never needs another to be promoted.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from dockyard.cache.locations import BlobLocations
from dockyard.oci.digest import Digest
from dockyard.storage.fsutil import fsync_dir, remove_file
from dockyard.storage.layout import blob_path
from dockyard.storage.stamps import VerifiedStamps


def _temp_beside(dest: Path, tag: str) -> Path:
    """A free name in ``dest``'s folder (hidden, so never taken for a blob)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{tag}.", suffix=".tmp")
    os.close(fd)
    os.unlink(name)
    return Path(name)


class BlobFiles:
    """Byte-level operations on ``ROOT/<repo>/blobs/<alg>/<hex>``."""

    def __init__(self, root: Path, locations: BlobLocations | None) -> None:
        self.root = root
        #: None when dedupe is off: every repository keeps plain copies.
        self.locations = locations
        #: Set by the root: files published here were hashed on the way in, so stamped.
        self.stamps: VerifiedStamps | None = None

    @property
    def dedupe(self) -> bool:
        return self.locations is not None

    def path(self, repo: str, digest: Digest) -> Path:
        return blob_path(self.root / repo, digest)

    def stat(self, repo: str, digest: Digest) -> os.stat_result | None:
        try:
            return os.stat(self.path(repo, digest))
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _link_known_copy(
        self, digest: Digest, dest: Path, source_ok: Callable[[str], bool] | None = None
    ) -> bool:
        """Hard-link ``dest`` to a copy the map knows; drop records of vanished files.

        ``source_ok``, when given, names the repositories a copy may come from.
        """
        if self.locations is None:
            return False
        key = str(digest)
        for known in self.locations.paths(key):
            if known == dest:
                continue
            if source_ok is not None and not source_ok(self.repo_of(known)):
                continue
            tmp = _temp_beside(dest, "link")
            try:
                os.link(known, tmp)
            except FileNotFoundError:
                self.locations.remove(key, known)  # stale: removed by GC or by hand
                continue
            except OSError as exc:
                if exc.errno in (errno.EMLINK, errno.EXDEV, errno.EPERM):
                    return False  # cannot share this inode: keep a copy of our own
                raise
            os.replace(tmp, dest)
            fsync_dir(dest.parent)
            self.locations.add(key, dest)
            return True
        return False

    def _record(self, digest: Digest, dest: Path) -> None:
        if self.locations is not None:
            self.locations.add(str(digest), dest)

    def publish(self, repo: str, digest: Digest, src: Path) -> None:
        """Move a verified, fsynced file into place under its digest (or link a twin)."""
        dest = self.path(repo, digest)
        if dest.exists() or self._link_known_copy(digest, dest):
            remove_file(src)
            self._record(digest, dest)
            return
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        fsync_dir(dest.parent)
        if self.stamps is not None:
            self.stamps.record(os.stat(dest), str(digest))
        self._record(digest, dest)

    def put_bytes(self, repo: str, digest: Digest, data: bytes) -> None:
        """Store small content (a manifest) under its digest, deduplicated like any blob."""
        dest = self.path(repo, digest)
        if dest.exists():
            return
        tmp = _temp_beside(dest, "put")
        try:
            with open(tmp, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            self.publish(repo, digest, tmp)
        finally:
            remove_file(tmp)

    def read_bytes(self, repo: str, digest: Digest, limit: int) -> bytes | None:
        """Small content (a manifest), or None when absent or larger than ``limit``."""
        try:
            with open(self.path(repo, digest), "rb") as f:
                data = f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return data if len(data) <= limit else None

    def link_in(
        self, repo: str, digest: Digest, source_ok: Callable[[str], bool] | None = None
    ) -> bool:
        """Give ``repo`` a blob another repository of this root holds (dedupe only)."""
        dest = self.path(repo, digest)
        return dest.exists() or self._link_known_copy(digest, dest, source_ok)

    def repo_of(self, blob: Path) -> str:
        """The repository holding ``ROOT/<repo>/blobs/<alg>/<hex>``."""
        return blob.relative_to(self.root).parent.parent.parent.as_posix()

    def link_from(self, repo: str, digest: Digest, source_repo: str) -> bool:
        """Make ``source_repo``'s blob appear in ``repo``: a hard link with dedupe, else a copy.

        False when the source does not hold the blob.
        """
        src = self.path(source_repo, digest)
        dest = self.path(repo, digest)
        if dest.exists():
            return True
        tmp = _temp_beside(dest, "mount")
        try:
            if self.dedupe:
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
        self._record(digest, dest)
        return True

    def delete(self, repo: str, digest: Digest) -> bool:
        """Unlink the repository's copy; the bytes go when no other repository links them.

        The last link takes the file's verified stamp with it, so no database under the
        root names a blob that is gone.
        """
        dest = self.path(repo, digest)
        try:
            st = os.stat(dest)
        except (FileNotFoundError, NotADirectoryError):
            st = None
        removed = remove_file(dest)
        if self.locations is not None:
            self.locations.remove(str(digest), dest)
        if removed and st is not None and st.st_nlink == 1 and self.stamps is not None:
            self.stamps.forget_many([(st.st_ino, str(digest))])
        return removed
