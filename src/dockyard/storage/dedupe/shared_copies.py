"""GC of the shared copies of object storage: a digest's stored bytes go when no
repository's reference names them any more (the hard link count reaching zero, locally).

Every reference object has an empty entry beside the copy it names
(``.<hex>.refs/<the reference's key>``, written before the reference and dropped after
it: see ``s3backend``). So "is this copy still named?" is one listing of that folder,
answered by the bucket, never by a cache (a ``FLUSHALL`` cannot make a named copy look
unnamed) and never by a walk of every repository.

Two steps. :func:`unnamed` (a worker process: it lists the whole shared store) picks the
copies with no entry that are older than the GC delay. :func:`drop_if_unnamed` then
checks one of them again and deletes it, called under the digest's publish lock: every
reference is written under that lock after its copy was found to exist, so a push that
names a copy either ran before the check (its entry is seen) or runs after the delete
(it finds no copy and stores the bytes again). Blocking; a crash between the steps
deletes nothing.

Entries left without their reference by a crash are dropped first (``leftover_entries``);
a dry run, which drops none, passes them as ``without`` so it lists the copies the sweep
would free.
"""

from __future__ import annotations

import time
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.backend import StorageBackend
from dockyard.storage.dedupe.leftover_entries import Leftover, named_without
from dockyard.storage.paths import blob_digest, shared_blob_path, shared_blobs_dir


def unnamed(
    backend: StorageBackend,
    root: Path,
    now: float,
    gc_delay: float,
    without: frozenset[Leftover] = frozenset(),
) -> list[str]:
    """Digests of shared copies that no entry names (but those ``without``), last written
    over ``gc_delay`` ago."""
    found: list[str] = []
    leaving = {name for name, _ in without}
    for alg_dir in backend.list(shared_blobs_dir(root)):
        if not alg_dir.is_dir:
            continue
        entries = backend.list(alg_dir.path)
        named = {entry.name for entry in entries if entry.is_dir}
        for entry in sorted(entries, key=lambda e: e.name):
            digest = blob_digest(alg_dir.name, entry.name)
            if entry.is_dir or digest is None:
                continue
            if f".{entry.name}.refs" in named and (
                str(digest) not in leaving or named_without(backend, root, digest, without)
            ):
                continue
            st = backend.stat(entry.path)
            if st is not None and now - st.st_ctime >= gc_delay:
                found.append(str(digest))
    return found


def drop_if_unnamed(
    backend: StorageBackend,
    root: Path,
    digest: str,
    gc_delay: float,
    dry_run: bool,
    without: frozenset[Leftover] = frozenset(),
) -> tuple[int, int] | None:
    """Delete one shared copy if it is still old and unnamed; (bytes freed, its identity
    for the verified stamps), or None when it stays. The caller holds the publish lock."""
    parsed = Digest.parse(digest)
    path = shared_blob_path(root, parsed)
    st = backend.stat(path)
    if st is None or time.time() - st.st_ctime < gc_delay:
        return None
    if named_without(backend, root, parsed, without):
        return None
    if not dry_run and not backend.delete(path):
        return None
    return st.st_size, st.st_ino
