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
import gc

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


def freeze_startup_objects() -> None:
    """Keep what start-up built (modules, classes, the app, its routes and stores) out of
    the cyclic garbage collector's full passes.

    Those objects live as long as the process, yet every full collection walks them
    again, holding the GIL: with GC of a 20,000-manifest repository under way a worker's
    full collections took 40-100 ms (``gc.callbacks`` timing), and every request that
    worker held waited as long. Frozen objects are still freed by reference counting.
    """
    gc.collect()
    gc.freeze()
