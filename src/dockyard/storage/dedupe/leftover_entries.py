"""GC of leftover entries: an entry beside a shared copy that names no reference.

Every reference object has an entry ``.<hex>.refs/<the reference's path>`` beside the
shared copy it names (see ``shared_copies``). The entry is written before the reference
and dropped after it, so a crash between the two writes (a push, a mount, an adoption)
or between the two deletes leaves an entry with no reference: the copy then looks named
forever. GC drops such entries before it decides which copies are unnamed.

Two steps, as for the copies. :func:`leftovers` (a worker process) lists the shared
store and each repository folder an old entry points into, one flat listing each, and
picks the entries older than the GC delay whose reference is absent or is not an empty
object (a full copy is no reference). :func:`drop_if_leftover` checks one again and
deletes it, under the digest's publish lock: every reference is written under it, after
its entry, so an entry found without its reference there has none on the way. It reads
the reference itself (its metadata must name this copy), so the listing's size is only
a first sort. An entry whose copy is gone is kept: a dangling reference is healed by
the next push of its digest, and must be named again when it is.
"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.backend import StorageBackend
from dockyard.storage.paths import entries_dir, entry_of, shared_blob_path, shared_blobs_dir

#: A leftover entry: the digest of the copy, and the reference's path under the root.
Leftover = tuple[str, str]
#: The one blob whose full copy is as empty as a reference: the listing cannot tell them.
_EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def leftovers(backend: StorageBackend, root: Path, now: float, gc_delay: float) -> list[Leftover]:
    """Entries older than ``gc_delay`` whose reference the listings do not show as one."""
    copies: set[str] = set()
    old: dict[Path, list[tuple[Digest, Path]]] = defaultdict(list)
    for listed in backend.walk(shared_blobs_dir(root)):
        found = entry_of(root, listed.path)
        if found is None:
            copies.add(listed.path.relative_to(shared_blobs_dir(root)).as_posix())
        elif now - listed.modified >= gc_delay:
            digest, reference = found
            old[reference.parent].append(found)
    picked: list[Leftover] = []
    for folder, entries in sorted(old.items()):
        sizes = {listed.path: listed.size for listed in backend.walk(folder)}
        for digest, reference in entries:
            if f"{digest.algorithm}/{digest.hex}" not in copies:
                continue  # the copy is gone: kept (see above)
            size = sizes.get(reference)
            if size is None or size != 0 or digest.hex == _EMPTY:
                picked.append((str(digest), reference.relative_to(root).as_posix()))
    return picked


def drop_if_leftover(
    backend: StorageBackend, root: Path, leftover: Leftover, gc_delay: float, dry_run: bool
) -> bool:
    """Delete one entry if it is still old and its reference still absent (or not a
    reference to this copy), and the copy is there; True when it goes (or would).
    Blocking; the caller holds the digest's publish lock."""
    digest = Digest.parse(leftover[0])
    reference = root / leftover[1]
    entry = entries_dir(root, digest) / leftover[1]
    if entry_of(root, entry) != (digest, reference):
        return False  # not a name this module made: never touched
    st = backend.stat(entry)
    if st is None or time.time() - st.st_ctime < gc_delay:
        return False
    shared = shared_blob_path(root, digest)
    if backend.resolve(shared) is None:
        return False
    named = backend.resolve(reference)
    if named is not None and named[0] == shared:
        return False  # a live reference
    return dry_run or backend.delete(entry)


def named_without(
    backend: StorageBackend, root: Path, digest: Digest, without: frozenset[Leftover]
) -> bool:
    """Whether the shared copy of ``digest`` has an entry besides those in ``without``
    (a dry run's leftovers, not deleted): what the copy's GC would see after the sweep."""
    gone = {reference for name, reference in without if name == str(digest)}
    if not gone:
        return backend.referenced(shared_blob_path(root, digest))
    for listed in backend.walk(entries_dir(root, digest)):
        found = entry_of(root, listed.path)
        if found is None or found[1].relative_to(root).as_posix() not in gone:
            return True
    return False
