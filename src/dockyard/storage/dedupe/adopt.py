"""Dedupe for a root that was filled by something else (an OCI layout, a zot root).

Runs in the background after serving starts, once per root (a marker in the cache says
it is done). It walks each repository's blob files, records them, and turns a duplicate
into a hard link to the copy already recorded: link to a temp name, then rename over the
duplicate, so a reader holding the old file keeps reading it and a new reader gets the
shared inode. No lock is taken; the rename is atomic and both files hold the same bytes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from dockyard.cache.locations import BlobLocations
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.storage.fsutil import remove_file

log = logging.getLogger("dockyard.adopt")
ADOPTED = "adopted"


def _blob_files(repo_dir: Path) -> list[tuple[Digest, Path]]:
    found = []
    blobs = repo_dir / "blobs"
    for alg_dir in blobs.iterdir() if blobs.is_dir() else ():
        for path in alg_dir.iterdir() if alg_dir.is_dir() else ():
            try:
                found.append((Digest.parse(f"{alg_dir.name}:{path.name}"), path))
            except InvalidDigest:
                continue
    return found


def adopt_repo(locations: BlobLocations, repo_dir: Path) -> int:
    """Record and link the blobs of one repository; return the bytes saved."""
    saved = 0
    for digest, path in _blob_files(repo_dir):
        key = str(digest)
        try:
            mine = os.stat(path)
        except OSError:
            continue
        for known in locations.paths(key):
            if known == path:
                break
            try:
                theirs = os.stat(known)
            except FileNotFoundError:
                locations.remove(key, known)
                continue
            if theirs.st_ino == mine.st_ino:
                break
            if theirs.st_size != mine.st_size:
                continue  # not the same bytes after all: leave both alone
            tmp = path.with_name(f".adopt.{path.name}.tmp")
            try:
                os.link(known, tmp)
                os.replace(tmp, path)
            except OSError as exc:
                remove_file(tmp)
                log.warning("could not link %s to %s: %s", path, known, exc)
                break
            if mine.st_nlink == 1:
                saved += mine.st_size
            break
        locations.add(key, path)
    return saved
