"""The machine's filesystem in memory (``/dev/shm``), for files that need no disk.

Memory-mapped files that the event loop writes to (the metrics values, a root's change
counter) must not live on a disk filesystem: there a write to a page that was just
written back faults, updates the file's time and may wait for disk I/O, and while GC unlinked
tens of thousands of files that wait was tens of milliseconds of a worker's event loop.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Where Linux mounts a tmpfs for shared memory.
SHM = Path("/dev/shm")


def memory_folder() -> Path | None:
    """The in-memory folder if this machine has one this process can write to, else None."""
    if SHM.is_dir() and os.access(SHM, os.W_OK | os.X_OK):
        return SHM
    return None
