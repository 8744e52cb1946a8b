"""A root's change counter, shared by the worker processes that serve it.

Each process caches what it read of a root (parsed ``index.json`` files, the catalog,
the referrers maps). A write by another worker must be seen on the very next request
(read-your-writes across workers), and a ``stat`` of every file per request is what the
caches exist to avoid. So every write that a cache depends on (each ``index.json``
rewrite, which a new repository, a tag, a manifest put or delete and GC all make) bumps
this counter after the file is in place and before the write is acknowledged; a reader
compares the counter with the value its cache was checked at, and looks at the files
again only when it moved.

The counter is a small file under the private folder, mapped shared into every process
(``ROOT/_dockyard/changes``). It has one 8-byte slot per writer (the worker's number), so
each slot has a single writer and needs no lock; a reader compares the whole region
(2 KiB: a memcmp) with the copy it saw last. The command-line tools (``dockyard gc``,
``scrub``, ``sync``) share one last slot; should two of them bump it at the same moment
one bump may be lost, and the caches' ``stat`` every ``layout.REVALIDATE_SECONDS`` still
finds their change.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
from pathlib import Path

from dockyard.private import FILE_MODE, private_folder

#: Writer slots: one per worker process (``http.workers`` is at most this).
SLOTS = 256
_SIZE = SLOTS * 8
_SLOT = struct.Struct("<Q")

#: This process's slot; a server sets it (``set_writer``: its worker number) before it
#: opens a root. Other processes (``dockyard gc``, ``scrub``, ``sync``) share the last.
_writer = SLOTS - 1


def set_writer(slot: int) -> None:
    """Name this process's slot (its worker number); called once, in the worker."""
    global _writer
    if not 0 <= slot < SLOTS:
        raise ValueError(f"writer slot {slot} out of range")
    _writer = slot


class ChangeCounter:
    """``bump()`` after a change is in place; ``seen()`` gives a value to compare with."""

    def __init__(self, path: Path | None) -> None:
        """``path`` None: this process alone (read-only looks): bumps stay in memory."""
        self._map: mmap.mmap | bytearray
        if path is None:
            self._map = bytearray(_SIZE)
            return
        private_folder(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)
            self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED)
        finally:
            os.close(fd)

    def seen(self) -> bytes:
        """The current value: equal to an earlier one only if nothing changed between."""
        return bytes(self._map)

    def bump(self) -> None:
        """Record a change (the file is already in place: a reader that sees the new value
        finds the new file)."""
        at = _writer * 8
        (count,) = _SLOT.unpack_from(self._map, at)
        _SLOT.pack_into(self._map, at, (count + 1) & 0xFFFF_FFFF_FFFF_FFFF)

    async def refresh(self) -> None:
        """Nothing to fetch: the shared mapping is always current."""

    async def publish(self) -> None:
        """Nothing to send: a bump is in the shared mapping as soon as it is made."""

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            with contextlib.suppress(BufferError, ValueError):
                self._map.close()
