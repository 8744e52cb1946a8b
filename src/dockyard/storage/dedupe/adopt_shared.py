"""Adoption on object storage: a repository's full copy of a blob becomes a reference.

A bucket root filled while dedupe was off, or by another registry (a plain OCI layout),
holds a full copy per repository. Served with dedupe on, each full blob object becomes
what a push would have made: the root's one shared copy (made from it server-side when
there is none) and, in the repository, an empty reference object naming that copy.

Nothing unverified is promoted. A copy counts as good when its verified stamp matches
(``stamps``: the upload hashed it, or a GET did) or when it is hashed here. The hash
runs before the lock is taken (a large blob must not hold up the publishes of its lock
stripe); under the lock, the stat the hash vouched for must still be the object's, both
before and after the server-side copy, so the copy took exactly the vouched bytes. An
existing shared copy is vouched for the same way before a repository's full copy is
replaced by a reference to it: a good full copy is never traded for bad shared bytes.

Each conversion runs under the digest's publish lock, fenced, as every reference write
does (GC deletes an unnamed shared copy under it); its last step under the repository's
lock too, which a blob delete holds, so a blob deleted meanwhile never comes back as a
reference. The steps, and what a crash after each leaves (every blob stays readable
throughout):

1. the shared copy made from the full copy (when absent): an extra object no entry
   names (or, cut mid-way over 5 GiB, an open multipart upload, which GC aborts); GC
   frees it after ``gcDelay``, or the rerun uses it; the repository still serves its
   full copy;
2. the entry ``.<hex>.refs/<reference>`` written: the copy is kept; the entry names no
   reference yet (the full copy is still in place), so GC's sweep of leftover entries
   drops it after ``gcDelay`` and then the copy if nothing else names it;
3. the reference written over the full copy (one PUT, atomic): done. A GET already
   reading the full copy goes on reading the version it started with; one that looked
   the object up just before but starts reading after sees an empty object where it
   expected the blob and answers 503 (never short or wrong bytes), and its retry
   follows the reference.

A rerun (adoption runs again until it completes, see ``adopt``) finds references where
it converted and carries on with the rest. A blob whose state changed between its vouch
and the lock (a push of the same digest made the shared copy) is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.oci.digest import Digest
from dockyard.oci.mediatypes import INDEX_TYPES
from dockyard.storage.blob_walk import blob_files
from dockyard.storage.dedupe.locations import LocationMap
from dockyard.storage.integrity import hash_stored
from dockyard.storage.layout import RepoIndex, index_stamp, read_manifest
from dockyard.storage.paths import blob_path, index_path, publish_key, shared_blob_path

if TYPE_CHECKING:
    from dockyard.storage.root import StorageRoot

log = logging.getLogger("dockyard.adopt")


@dataclass(frozen=True)
class Vouched:
    """A stored copy whose bytes were found to match the digest, at this stat."""

    path: Path
    st: os.stat_result


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    """The same stored version: identity (the ETag's), size and time written."""
    return (a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_ino, b.st_size, b.st_mtime_ns)


def manifest_digests(root: StorageRoot, repo_dir: Path) -> set[str]:
    """The manifests ``index.json`` lists and the children of those that are indexes.

    They stay objects of their own, as a push leaves them (``BlobFiles.put_bytes``): a
    reference would be as large and cost a second request on every read. Only an index
    (or a manifest whose descriptor does not say) is read: an image manifest has no
    children, and a GET of each would make a re-adoption cost a request per manifest.
    """
    try:
        index = RepoIndex.load(root.backend.read_bytes(index_path(repo_dir)))
    except (OSError, ValueError):
        return set()
    found: set[str] = set()
    stack = [(d["digest"], d.get("mediaType")) for d in index.manifests]
    while stack:
        digest, media_type = stack.pop()
        if digest in found:
            continue
        found.add(digest)
        if media_type is not None and media_type not in INDEX_TYPES:
            continue
        manifest = read_manifest(repo_dir, digest, root.backend)
        if manifest is not None:
            stack.extend((str(d.digest), d.media_type) for d in manifest.manifests)
    return found


class Manifests:
    """One repository's manifests (:func:`manifest_digests`), read again only when its
    ``index.json`` changed. Asked once more under the repository's lock before each
    conversion: a manifest pushed while adoption runs was stored after the walk picked
    the full copies, and must stay an object of its own (a read racing its conversion
    would find it empty and answer MANIFEST_UNKNOWN). A push stores the manifest and
    lists it in one hold of that lock, so under it the two always agree."""

    def __init__(self, root: StorageRoot, repo_dir: Path) -> None:
        self.root, self.repo_dir = root, repo_dir
        self._stamp: tuple[int, int, int] | None = None
        self._digests: set[str] = set()

    def current(self) -> set[str]:
        """Blocking: a HEAD of ``index.json``, and its reads when it changed."""
        stamp = index_stamp(self.root.backend, self.repo_dir)
        if stamp is None or stamp != self._stamp:
            self._digests = manifest_digests(self.root, self.repo_dir)
            self._stamp = stamp
        return self._digests


def full_copies(root: StorageRoot, locations: LocationMap, manifests: Manifests) -> list[str]:
    """Record every blob of the repository in the map; return the digests of the blobs
    it holds as full copies of its own (not references, not manifests, not empty)."""
    listed = manifests.current()
    found = []
    for blob in blob_files(root.backend, manifests.repo_dir):
        locations.add(blob.digest, blob.path)
        if blob.nlink == 1 and blob.size > 0 and blob.digest not in listed:
            found.append(blob.digest)
    return found


def _hashed_good(root: StorageRoot, digest: Digest, path: Path) -> os.stat_result | None:
    """The stat of ``path`` if its bytes hash to ``digest`` (stamped then), else None."""
    backend = root.backend
    result = hash_stored(backend, path, digest.algorithm)
    if result is None or result[0] != digest.hex:
        return None
    st = backend.stat(path)
    if st is None or (st.st_ino, st.st_size, st.st_mtime_ns) != result[1:]:
        return None  # changed since it was hashed
    root.stamps.record(st, str(digest))
    return st


def vouch(root: StorageRoot, digest: Digest, path: Path) -> Vouched | None:
    """The good copy to convert ``path`` with: the shared copy when there is one, else
    the full copy itself. None when that copy fails its digest (logged) or ``path`` is
    no longer a full copy. Blocking, no lock: hashing may read a whole blob."""
    backend = root.backend
    shared = shared_blob_path(root.path, digest)
    found = backend.resolve(shared)
    candidate = shared
    if found is None:
        found = backend.resolve(path)
        candidate = path
        if found is None or found[0] != path:
            return None  # deleted, or a reference already
    st = found[1]
    if root.stamps.matches(st, str(digest)):
        return Vouched(candidate, st)
    good = _hashed_good(root, digest, candidate)
    if good is None:
        log.warning(
            "dedupe adoption: %s does not hash to %s; %s keeps its own copy",
            candidate,
            digest,
            path,
        )
        return None
    return Vouched(candidate, good)


@dataclass(frozen=True)
class Prepared:
    """A shared copy ready to be named instead of the full copy at this stat."""

    full: os.stat_result
    #: Bytes the conversion frees: 0 when the shared copy was made from this full copy.
    saved: int


def prepare(root: StorageRoot, digest: Digest, path: Path, vouched: Vouched) -> Prepared | None:
    """Make sure the root's shared copy of ``digest`` exists and is good, made from the
    full copy at ``path`` when absent; None when something changed since ``vouched``
    (left for the next adoption).

    Blocking; the caller holds the digest's publish lock, fenced.
    """
    backend = root.backend
    shared = shared_blob_path(root.path, digest)
    found = backend.resolve(path)
    if found is None or found[0] != path:
        return None
    full = found[1]
    existing = backend.resolve(shared)
    if existing is not None:
        st = existing[1]
        if vouched.path != shared or not _same(st, vouched.st) or st.st_size != full.st_size:
            return None
        return Prepared(full, full.st_size)
    if vouched.path != path or not _same(full, vouched.st):
        return None
    backend.copy(path, shared)
    after, made = backend.stat(path), backend.stat(shared)
    if after is None or not _same(after, full) or made is None or made.st_size != full.st_size:
        # The full copy changed under the copy: what was copied is unvouched. Nobody
        # names the new object (references are written under the lock held here).
        backend.delete(shared)
        return None
    root.stamps.record(made, str(digest))
    return Prepared(full, 0)


def replace(
    root: StorageRoot, digest: Digest, path: Path, full: os.stat_result, manifests: Manifests
) -> bool | None:
    """Write the reference over the full copy if it is still the one prepared for; False
    when it changed or went (a delete: it must not come back as a reference); None when
    it is a manifest now (pushed meanwhile), which stays as it is.

    Blocking; the caller holds the publish lock and the repository's lock, fenced.
    """
    if str(digest) in manifests.current():
        return None
    found = root.backend.resolve(path)
    if found is None or found[0] != path or not _same(found[1], full):
        return False
    root.backend.replace_with_link(shared_blob_path(root.path, digest), path)
    return True


#: Tries per blob: a push of the same digest may make the shared copy between the vouch
#: and the lock (then the next try vouches for that copy, by its upload's stamp).
_TRIES = 3


async def _convert_one(
    root: StorageRoot, repo: str, digest: Digest, path: Path, manifests: Manifests
) -> int | None:
    """One full copy turned into a reference: the bytes saved, or None when it is left
    as it is (it fails its digest, went, or kept changing)."""
    for _ in range(_TRIES):
        vouched = await asyncio.to_thread(vouch, root, digest, path)
        if vouched is None:
            return None
        async with root.locks.hold(publish_key(digest)) as held:
            await held.fence()
            prepared = await asyncio.to_thread(prepare, root, digest, path, vouched)
            if prepared is None:
                continue
            async with root.locks.hold(repo) as repo_held:
                await repo_held.fence()
                done = await asyncio.to_thread(
                    replace, root, digest, path, prepared.full, manifests
                )
                if done is None:
                    return None  # a manifest pushed meanwhile (its shared copy: GC's)
                if done:
                    return prepared.saved
    log.info("dedupe adoption: %s kept changing; left as it is", path)
    return None


async def adopt_shared_repo(root: StorageRoot, locations: LocationMap, repo_dir: Path) -> int:
    """Record the blobs of one repository and turn its full copies into references; return
    the bytes saved (a full copy dropped because the root already stored its bytes).

    Locks are taken in one order, the digest's publish lock then the repository's (no
    other holder of both takes them the other way), the second only around the last
    step, so a long server-side copy never holds up the repository's pushes.
    """
    saved = 0
    repo = repo_dir.relative_to(root.path).as_posix()
    manifests = Manifests(root, repo_dir)
    digests = await asyncio.to_thread(full_copies, root, locations, manifests)
    for text in digests:
        digest = Digest.parse(text)
        path = blob_path(repo_dir, digest)
        saved += await _convert_one(root, repo, digest, path, manifests) or 0
    return saved
