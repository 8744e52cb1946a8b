"""Blob files of the repositories of one root: publish, link, copy, stat, delete.

Every file appears under its final name in one step, so a reader sees a blob whole or
not at all. With dedupe on, a blob another repository holds is linked in rather than
stored again (see :mod:`dockyard.storage.dedupe`). On object storage (a backend
``by_reference``) a digest's bytes go once to the root's shared store and each
repository gets a reference object naming them; every call that writes a reference
(:meth:`publish`, :meth:`link_in`, :meth:`link_from` with dedupe) runs under the
digest's publish lock, which GC takes to delete a shared copy no reference names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.backend import LinkUnsupported, StorageBackend
from dockyard.storage.dedupe.sharing import Dedupe
from dockyard.storage.paths import blob_path, repo_of_blob, shared_blob_path
from dockyard.storage.stamps import VerifiedStamps


class BlobFiles:
    """Byte-level operations on ``ROOT/<repo>/blobs/<alg>/<hex>``."""

    def __init__(self, root: Path, backend: StorageBackend, sharing: Dedupe) -> None:
        self.root = root
        self.backend = backend
        self.sharing = sharing
        #: Set by the root: files published here were hashed on the way in, so stamped.
        self.stamps: VerifiedStamps | None = None

    @property
    def dedupe(self) -> bool:
        return self.sharing.on

    @property
    def by_reference(self) -> bool:
        """Dedupe is on and names share a copy through reference objects (object
        storage): writing a reference needs the digest's publish lock."""
        return self.sharing.on and self.backend.by_reference

    def resolve(self, repo: str, digest: Digest) -> tuple[Path, os.stat_result] | None:
        """The path holding the bytes of ``repo``'s blob (the shared copy a reference
        names) and its stat, so a served blob costs one look-up of the reference, not
        one per read."""
        return self.backend.resolve(self.path(repo, digest))

    def _stamp(self, path: Path, digest: Digest) -> None:
        if self.stamps is not None:
            st = self.backend.stat(path)
            if st is None:
                raise FileNotFoundError(path)
            self.stamps.record(st, str(digest))

    def path(self, repo: str, digest: Digest) -> Path:
        return blob_path(self.root / repo, digest)

    def stat(self, repo: str, digest: Digest) -> os.stat_result | None:
        return self.backend.stat(self.path(repo, digest))

    def publish(self, repo: str, digest: Digest, src: Path) -> None:
        """Move a verified file into place under its digest, made durable first, or link
        a twin and drop the file (never fsynced then: its bytes are stored already)."""
        backend = self.backend
        dest = self.path(repo, digest)
        if backend.exists(dest):
            backend.delete(src)
            self.sharing.record(digest, dest)
            return
        if self.by_reference:
            self._publish_shared(digest, src, dest)
            return
        if self.sharing.link_known_copy(digest, dest):
            backend.delete(src)
            self.sharing.record(digest, dest)
            return
        backend.sync_file(src)
        backend.move_into_place(src, dest)
        self._stamp(dest, digest)
        self.sharing.record(digest, dest)

    def publish_pinned(self, repo: str, digest: Digest, pin: Path) -> None:
        """Give ``repo`` the stored copy a duplicate upload pinned (its bytes matched the
        digest): renamed into place, no byte written or fsynced, since the copy is
        durable already. The caller holds the digest's publish lock."""
        dest = self.path(repo, digest)
        if self.backend.exists(dest):
            self.backend.delete(pin)
        else:
            self.backend.move_into_place(pin, dest)
        self.sharing.record(digest, dest)

    def _publish_shared(self, digest: Digest, src: Path, dest: Path) -> None:
        """Object storage with dedupe: the upload becomes the root's shared copy unless
        there is one (derived from the digest: one HEAD, no cache), and ``dest`` a
        reference to it. The caller holds the digest's publish lock."""
        backend = self.backend
        shared = shared_blob_path(self.root, digest)
        if backend.exists(shared):
            backend.link(shared, dest)
            backend.delete(src)  # the bytes are stored already: none copied again
        else:
            backend.sync_file(src)
            backend.move_into_place(src, shared)
            self._stamp(shared, digest)
            backend.link(shared, dest)
        self.sharing.record(digest, dest)

    def put_bytes(self, repo: str, digest: Digest, data: bytes) -> None:
        """Store small content (a manifest) under its digest, deduplicated like any blob."""
        backend = self.backend
        dest = self.path(repo, digest)
        if backend.exists(dest):
            return
        # On object storage a manifest stays a small object of its own: a reference
        # would be as large, and cost a second request on every read of it.
        if not backend.by_reference and self.sharing.link_known_copy(digest, dest):
            self.sharing.record(digest, dest)
            return
        backend.write_atomic(dest, data)
        self._stamp(dest, digest)
        self.sharing.record(digest, dest)

    def read_bytes(self, repo: str, digest: Digest, limit: int) -> bytes | None:
        """Small content (a manifest), or None when absent or larger than ``limit``."""
        try:
            data = self.backend.read_bytes(self.path(repo, digest), limit)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return data if len(data) <= limit else None

    def link_in(
        self, repo: str, digest: Digest, source_ok: Callable[[str], bool] | None = None
    ) -> bool:
        """Give ``repo`` a blob another repository of this root holds (dedupe only)."""
        dest = self.path(repo, digest)
        return self.backend.exists(dest) or self.sharing.link_known_copy(
            digest, dest, source_ok, copy_unshared=True
        )

    def repo_of(self, blob: Path) -> str:
        """The repository holding ``ROOT/<repo>/blobs/<alg>/<hex>``."""
        return repo_of_blob(self.root, blob)

    def link_from(self, repo: str, digest: Digest, source_repo: str) -> bool:
        """Make ``source_repo``'s blob appear in ``repo``: shared with dedupe, else a copy.

        False when the source does not hold the blob. On object storage with dedupe the
        caller holds the digest's publish lock.
        """
        src = self.path(source_repo, digest)
        dest = self.path(repo, digest)
        if self.backend.exists(dest):
            return True
        try:
            if self.by_reference:
                self.sharing.share(digest, src, dest)
            elif self.dedupe:
                try:
                    self.backend.link(src, dest)
                except LinkUnsupported:  # another filesystem: a copy of its own
                    self.backend.copy(src, dest)
            else:
                self.backend.copy(src, dest)
        except FileNotFoundError:
            return False
        self.sharing.record(digest, dest)
        return True

    def delete(self, repo: str, digest: Digest) -> bool:
        """Remove the repository's copy; the bytes go when no other repository links them.

        The last link takes the file's verified stamp with it, so no database under the
        root names a blob that is gone.
        """
        dest = self.path(repo, digest)
        st = self.backend.stat(dest)
        removed = self.backend.delete(dest)
        self.sharing.forget(digest, dest)
        if removed and st is not None and st.st_nlink == 1 and self.stamps is not None:
            self.stamps.forget_many([(st.st_ino, str(digest))])
        return removed
