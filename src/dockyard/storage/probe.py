"""Is a storage root reachable and writable right now? (the readiness probe)."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

from dockyard.cache.locations import CACHE_DIR
from dockyard.private import private_folder


def probe_writable(root: Path) -> None:
    """Write and remove a small file under ``ROOT/_dockyard/``; OSError says why not.

    A real write, not an access() check: a full disk, a read-only remount or a vanished
    mount all fail here the way a push would.
    """
    folder = root / CACHE_DIR
    if not root.is_dir():
        raise FileNotFoundError(2, "storage root is missing", str(root))
    private_folder(folder)
    path = folder / f".readyz-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with open(path, "wb") as f:
            f.write(b"dockyard readiness probe\n")
            f.flush()
            os.fsync(f.fileno())
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
