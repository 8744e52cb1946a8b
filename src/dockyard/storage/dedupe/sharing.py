"""One root's dedupe: whether it is on, its map, and linking a known copy in.

With dedupe on, identical blobs of different repositories are one stored copy with
several names (hard links on a filesystem), found through the durable
:class:`BlobLocations` map. All names are equal: no copy is "the original", so deleting
any of them never needs another to be promoted. The map is a hint: a record whose file has
vanished is dropped when found, and the backend decides what exists.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.backend import LinkUnsupported, StorageBackend
from dockyard.storage.dedupe.locations import BlobLocations, LocationMap
from dockyard.storage.paths import repo_of_blob, shared_blob_path

#: Which repositories a copy may be taken from (None: any).
SourceFilter = Callable[[str], bool] | None


class Dedupe:
    """Dedupe of one storage root; switched on and off live by a config reload."""

    def __init__(
        self,
        root: Path,
        backend: StorageBackend,
        enabled: bool,
        open_map: Callable[[Path], LocationMap] = BlobLocations,
    ) -> None:
        """``open_map``: the root's map (SQLite under the root, or Redis for replicas)."""
        self.root = root
        self.backend = backend
        self._open_map = open_map
        self._opened: LocationMap | None = None
        #: The map while dedupe is on, else None. Requests in flight keep the object they
        #: hold when it is switched off; the map stays open until the root closes.
        self.locations: LocationMap | None = None
        self.switch(enabled)

    @property
    def on(self) -> bool:
        return self.locations is not None

    def switch(self, on: bool) -> None:
        """Turn dedupe on (opening the map once) or off (new requests keep plain copies)."""
        if on and self._opened is None:
            self._opened = self._open_map(self.root)
        self.locations = self._opened if on else None

    def close(self) -> None:
        if self._opened is not None:
            self._opened.close()
            self._opened = self.locations = None

    def knows(self, digest: Digest) -> bool:
        """True when the map names a copy of ``digest`` (it may have vanished since)."""
        locations = self.locations
        return locations is not None and locations.has_digest(str(digest))

    def record(self, digest: Digest, dest: Path) -> None:
        if self.locations is not None:
            self.locations.add(str(digest), dest)

    def forget(self, digest: Digest, dest: Path) -> None:
        if self.locations is not None:
            self.locations.remove(str(digest), dest)

    def link_known_copy(
        self,
        digest: Digest,
        dest: Path,
        source_ok: SourceFilter = None,
        *,
        copy_unshared: bool = False,
    ) -> bool:
        """Make ``dest`` a name of a copy the map knows; drop records of vanished files.

        ``source_ok``, when given, names the repositories a copy may come from. False when
        dedupe is off, no usable copy is known, or the backend cannot share it here;
        with ``copy_unshared`` (a HEAD or mount, where no upload brings the bytes) a copy
        that cannot be shared is copied instead (object storage: server-side).
        """
        locations = self.locations
        if locations is None:
            return False
        key = str(digest)
        for known in locations.paths(key):
            if known == dest:
                continue
            if source_ok is not None and not source_ok(repo_of_blob(self.root, known)):
                continue
            if self.backend.by_reference:
                if not copy_unshared:
                    return False  # a publish: it finds the shared copy by its digest
                try:
                    self.share(digest, known, dest)
                except FileNotFoundError:
                    locations.remove(key, known)  # stale: removed by GC or by hand
                    continue
                locations.add(key, dest)
                return True
            try:
                self.backend.link(known, dest)
            except FileNotFoundError:
                locations.remove(key, known)  # stale: removed by GC or by hand
                continue
            except LinkUnsupported:
                if not copy_unshared:
                    return False  # cannot share this copy: keep the upload's own
                try:
                    self.backend.copy(known, dest)
                except FileNotFoundError:
                    locations.remove(key, known)
                    continue
            locations.add(key, dest)
            return True
        return False

    def pin_known_copy(self, digest: Digest, pin: Path) -> bool:
        """Make the private name ``pin`` a hard link to a copy the map knows, recording
        nothing: it holds the bytes while a duplicate upload of them is hashed, so a
        delete of every other name cannot take them away meanwhile. Whichever repository
        holds the copy: the pin becomes a name only once the uploaded bytes matched.

        False when dedupe is off, no copy is known, or the backend cannot share it
        (object storage, another filesystem): the upload then stores its own bytes.
        """
        locations = self.locations
        if locations is None or self.backend.by_reference:
            return False
        key = str(digest)
        for known in locations.paths(key):
            try:
                self.backend.link(known, pin, durable=False)  # a crash drops it: fine
            except FileNotFoundError:
                locations.remove(key, known)  # stale: removed by GC or by hand
                continue
            except LinkUnsupported:
                return False
            return True
        return False

    def share(self, digest: Digest, known: Path, dest: Path) -> None:
        """Object storage: make ``dest`` a reference to the root's shared copy of
        ``digest``, made from ``known`` (server-side) when there is none yet (a full copy
        from before dedupe). FileNotFoundError when ``known`` holds nothing: a name the
        caller may read must hold the blob, or it would reveal another repository's.

        The caller holds the digest's publish lock (GC takes it to delete a shared copy).
        """
        backend = self.backend
        if backend.resolve(known) is None:
            raise FileNotFoundError(known)
        shared = shared_blob_path(self.root, digest)
        if backend.resolve(shared) is None:
            backend.copy(known, shared)
        backend.link(shared, dest)
