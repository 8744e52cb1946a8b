"""A root's change counter, shared by the worker processes that serve it.

Each process caches what it read of a root (parsed ``index.json`` files, the catalog,
the referrers maps). A write by another worker must be seen on the very next request
(read-your-writes across workers), and a ``stat`` of every file per request is what the
caches exist to avoid. So every write that a cache depends on (each ``index.json``
rewrite, which a new repository, a tag, a manifest put or delete and GC all make) bumps
this counter after the file is in place and before the write is acknowledged; a reader
compares the counter with the value its cache was checked at, and looks at the files
again only when it moved.

The counter is a small file mapped shared into every process that opens the root. It
lives in memory (``/dev/shm/dockyard-changes-<id>``, named by the root folder's device and
inode, so every path to the root finds it): a bump is a write on the event loop, and on a
disk filesystem a write to a mapped page that was written back faults and may wait for I/O,
which stalled the loop for tens of milliseconds while GC unlinked many files. Without a
usable ``/dev/shm`` it is ``ROOT/_dockyard/changes``. It has one 8-byte slot per writer
(the worker's number), so each slot has a single writer and needs no lock; a reader
compares the whole region (2 KiB: a memcmp) with the copy it saw last. The command-line
tools (``dockyard gc``, ``scrub``, ``sync``) share one last slot; should two of them bump
it at the same moment one bump may be lost, and the caches' ``stat`` every
``layout.REVALIDATE_SECONDS`` still finds their change.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import stat
import struct
from pathlib import Path

from dockyard.private import FILE_MODE, private_folder
from dockyard.storage.paths import changes_path
from dockyard.util.memory_fs import memory_folder

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


class _Holder:
    """This process's share of an in-memory counter file: a shared ``flock`` on it.

    The file is removed by the last process that lets go of it (an exclusive lock taken
    without waiting, at ``close``), so ``/dev/shm`` does not collect one file per root
    ever opened. A process that opened the file just before it was removed finds, once
    its shared lock is granted, that the name no longer leads to its file, and opens
    again: two processes never count on two different files. Only the process that took
    the lock lets go of it: a forked child shares the lock, and must not convert it.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self.fd, self.path, self.pid = fd, path, os.getpid()

    def release(self) -> None:
        if os.getpid() != self.pid:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(self.path, self.fd):
                self.path.unlink()
        except OSError:
            pass  # held by another process (BlockingIOError) or gone: theirs to remove
        finally:
            os.close(self.fd)


def _same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` still names the file open at ``fd``."""
    try:
        named = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


class ChangeCounter:
    """``bump()`` after a change is in place; ``seen()`` gives a value to compare with."""

    def __init__(self, mapping: mmap.mmap | None = None, holder: _Holder | None = None) -> None:
        """``mapping`` None: this process alone (read-only looks): bumps stay in memory."""
        self._map: mmap.mmap | bytearray = bytearray(_SIZE) if mapping is None else mapping
        self._holder = holder

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
        """Let go of the shared file; a late look or bump still works, on a private copy."""
        if isinstance(self._map, mmap.mmap):
            mapping, self._map = self._map, bytearray(self._map)
            with contextlib.suppress(BufferError, ValueError):
                mapping.close()
        if self._holder is not None:
            holder, self._holder = self._holder, None
            holder.release()


def open_counter(root: Path) -> ChangeCounter:
    """The counter every process of this machine shares for the root folder ``root``."""
    memory = memory_folder()
    if memory is not None:
        try:
            return _open_in_memory(memory, root)
        except OSError:
            pass  # someone else's file under that name, or no room: the disk's copy
    path = changes_path(root)
    private_folder(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        return ChangeCounter(_map_fd(path, fd))
    finally:
        os.close(fd)


def _open_in_memory(memory: Path, root: Path) -> ChangeCounter:
    """Map the root's counter in ``memory``; refuse a file this root's owner did not make.

    The folder is shared by every user of the machine, so a file of that name may have been
    put there by another user to freeze or replay the counter (and so keep a stale cache in
    use): it must belong to the root's owner and be writable by no one else. A counter
    created by root (``dockyard gc`` run with sudo) is given to the root folder's owner, so
    the server can still open it.
    """
    folder = os.stat(root)
    path = memory / in_memory_name(folder)
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
    while True:
        fd = os.open(path, flags, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if not _same_file(path, fd):
                os.close(fd)  # removed by its last holder meanwhile: open the new one
                continue
            return ChangeCounter(
                _map_fd(path, fd, owner=(folder.st_uid, folder.st_gid)), _Holder(fd, path)
            )
        except BaseException:
            os.close(fd)
            raise


def in_memory_name(folder: os.stat_result) -> str:
    """The counter's file name in memory for the root folder ``folder`` (its ``stat``)."""
    name = hashlib.sha256(f"{folder.st_dev}:{folder.st_ino}".encode()).hexdigest()[:32]
    return f"dockyard-changes-{name}"


def _map_fd(path: Path, fd: int, owner: tuple[int, int] | None = None) -> mmap.mmap:
    """Check the open file (``owner``: whose it must be), size it, and map it shared."""
    info = os.fstat(fd)
    if owner is not None:
        if info.st_uid == 0 and owner[0] != 0 and os.geteuid() == 0:
            os.fchown(fd, *owner)
        elif info.st_uid != owner[0]:
            raise PermissionError(f"{path} belongs to uid {info.st_uid}, not the root's owner")
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise PermissionError(f"{path} is not a private regular file")
    if info.st_size < _SIZE:
        os.ftruncate(fd, _SIZE)
    return mmap.mmap(fd, _SIZE, mmap.MAP_SHARED)
