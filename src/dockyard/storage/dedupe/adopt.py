"""Dedupe for a root that was filled by something else (an OCI layout, a zot root).

Runs in the background after serving starts, once per root (a marker in the map says it
is done), and again when a config reload switches dedupe on. It walks each repository's
blob files, records them, and turns a duplicate into a name of the copy already recorded
(``replace_with_link``: a reader holding the old file keeps reading it, a new reader gets
the shared copy). No lock is taken; the replacement is atomic and both hold the same bytes.

On object storage (references, no hard links) a full copy becomes a reference to the
root's shared copy instead, under the digest's publish lock: see ``adopt_shared``. The
"adopted" mark is set only once every repository is done, so adoption cut short by a
crash or an outage runs again whole at the next start (or map check).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dockyard.storage.backend import StorageBackend
from dockyard.storage.blob_walk import blob_files
from dockyard.storage.dedupe.adopt_shared import adopt_shared_repo
from dockyard.storage.dedupe.locations import LocationMap

if TYPE_CHECKING:
    from dockyard.storage.root import StorageRoot

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
            except OSError as exc:
                log.warning("could not link %s to %s: %s", path, known, exc)
                break
            if blob.nlink == 1:
                saved += blob.size
            break
        locations.add(key, path)
    return saved


async def adopt_root(root: StorageRoot, locations: LocationMap, repo_dirs: Iterable[Path]) -> int:
    """Adopt every repository of a root, one at a time; mark the root done."""
    saved = 0
    for repo_dir in repo_dirs:
        if root.backend.by_reference:
            saved += await adopt_shared_repo(root, locations, repo_dir)
        else:
            saved += await asyncio.to_thread(adopt_repo, root.backend, locations, repo_dir)
    locations.set_meta(ADOPTED, "1")
    return saved
