"""Is a storage root reachable and writable right now? (the readiness probe)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from dockyard.private import private_folder
from dockyard.storage.backend import StorageBackend
from dockyard.storage.localfs import LOCAL
from dockyard.storage.paths import private_dir, probe_path


def probe_writable(root: Path, backend: StorageBackend = LOCAL) -> None:
    """Write and remove a small file under ``ROOT/_dockyard/``; OSError says why not.

    A real write, not an access() check: a full disk, a read-only remount or a vanished
    mount all fail here the way a push would. A root whose layouts live elsewhere (a
    bucket) is probed twice: its local private folder, and an object written and
    removed through its backend (a bucket that does not answer fails here).
    """
    if LOCAL.stat(root) is None:
        raise FileNotFoundError(2, "storage root is missing", str(root))
    private_folder(private_dir(root))
    targets = [LOCAL] if backend is LOCAL else [LOCAL, backend]
    for target in targets:
        path = probe_path(root, os.getpid(), uuid.uuid4().hex[:8])
        try:
            try:
                target.write_atomic(path, b"dockyard readiness probe\n")
            finally:
                target.delete(path)
        except Exception as exc:
            if isinstance(exc, OSError):
                raise
            # An object store's client errors (unreachable, denied, no bucket): one reason.
            raise OSError(0, f"object storage does not answer: {exc}") from exc
