"""Keeping the server's memory flat under large concurrent uploads.

Upload batches (256 KiB) are allocated by the event loop and freed by worker threads.
With glibc's defaults every thread gets an arena of its own that keeps what was freed in
it, and the mmap threshold drifts up as large buffers are freed: a benchmark run left
the server at 326 MiB peak RSS. Two arenas bound what the threads can hold, and a fixed
1 MiB threshold keeps batches in the (reused) heap instead of fresh page-faulted maps.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def tune_allocator() -> None:
    """Apply the settings above; a no-op where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_ARENA_MAX, 2)
    mallopt(_M_MMAP_THRESHOLD, 1024 * 1024)
