"""Dedupe for a root that was filled by something else (an OCI layout, a zot root).

Runs in the background after serving starts, once per root (a marker in the map says it
is done), and again when a config reload switches dedupe on. It walks each repository's
blob files, records them, and turns a duplicate into a name of the copy already recorded
(``replace_with_link``: a reader holding the old file keeps reading it, a new reader gets
the shared copy). No lock is taken; the replacement is atomic and both hold the same bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from dockyard.storage.backend import LinkUnsupported, StorageBackend
from dockyard.storage.blob_walk import blob_files
from dockyard.storage.dedupe.locations import LocationMap

log = logging.getLogger("dockyard.adopt")
#: The map's marker: this root's existing blobs were recorded and linked once.
ADOPTED = "adopted"


def adopt_repo(backend: StorageBackend, locations: LocationMap, repo_dir: Path) -> int:
    """Record and link the blobs of one repository; return the bytes saved."""
    saved = 0
    for blob in blob_files(backend, repo_dir):
        key, path = blob.digest, blob.path
        for known in locations.paths(key):
            if known == path:
                break
            theirs = backend.stat(known)
            if theirs is None:
                locations.remove(key, known)
                continue
            if theirs.st_ino == blob.ino:
                break
            if theirs.st_size != blob.size:
                continue  # not the same bytes after all: leave both alone
            try:
                backend.replace_with_link(known, path)
            except LinkUnsupported:
                break  # object storage: recorded, so a HEAD or mount copies it server-side
            except OSError as exc:
                log.warning("could not link %s to %s: %s", path, known, exc)
                break
            if blob.nlink == 1:
                saved += blob.size
            break
        locations.add(key, path)
    return saved


async def adopt_root(
    backend: StorageBackend, locations: LocationMap, repo_dirs: Iterable[Path]
) -> int:
    """Adopt every repository of a root, one at a time in a thread; mark the root done."""
    saved = 0
    for repo_dir in repo_dirs:
        saved += await asyncio.to_thread(adopt_repo, backend, locations, repo_dir)
    locations.set_meta(ADOPTED, "1")
    return saved
