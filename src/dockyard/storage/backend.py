"""What storage needs of the place bytes live: the backend interface.

Like distribution's ``StorageDriver``, it is small and knows nothing of OCI: files named
by paths under a root (built only by :mod:`dockyard.storage.paths`), and the operations
the storage engine is made of. Everything above it (blobs, uploads, ``index.json``,
dedupe, integrity) is written against this interface; :class:`LocalBackend` (in
``localfs``) is the filesystem implementation, with hard links, sendfile and fsync.

The operations are blocking: callers run them in a thread (or GC's worker process),
never on the event loop. ``docs/architecture.md`` explains how an object store (S3)
implements each one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

#: The HTTP methods a presigned URL may be made for.
UrlMethod = Literal["GET", "HEAD"]


class LinkUnsupported(OSError):
    """The backend cannot share one stored copy between two names here (no hard link
    across filesystems, or the link count is at its limit): keep a copy of its own."""


@dataclass(frozen=True)
class Entry:
    """One name in a listing: a folder (a key prefix) or a file."""

    name: str
    path: Path
    is_dir: bool
    #: Identity of the stored bytes: equal for two names sharing them (an inode).
    ino: int


@dataclass(frozen=True)
class Listed:
    """One file of a listing at every depth (:meth:`StorageBackend.walk`)."""

    path: Path
    size: int
    #: When its content was last written (seconds since the epoch).
    modified: float


class Appender(Protocol):
    """An open upload file, only ever appended to by one writer at a time."""

    def write(self, data: bytes | bytearray) -> None:
        """Append all of ``data``."""

    def sync(self) -> None:
        """Make what was appended durable: the upload's 202 promises it survives a crash."""

    def truncate(self, size: int) -> None:
        """Roll back to ``size`` bytes (a failed chunk leaves the upload as it was)."""

    def close(self) -> None: ...


class StorageBackend(Protocol):
    """Blocking operations on files under a storage root."""

    #: True where names share one stored copy through reference objects (object storage,
    #: which has no hard links): only a copy in the root's shared store
    #: (``paths.shared_blob_path``) can be linked to, and ``stat``, ``open_read`` and
    #: ``copy`` of a reference follow it. False: ``link`` makes equal names (hard links).
    by_reference: bool

    def resolve(self, path: Path) -> tuple[Path, os.stat_result] | None:
        """The path whose stored bytes ``path`` names (itself, or a reference's target),
        and ``path``'s stat; None when absent (a reference whose target is gone is absent
        too). A blob GET reads the reference once and hands the stat on."""

    def referenced(self, path: Path) -> bool:
        """Whether another name shares ``path``'s stored bytes (a reference names it, or
        a hard link): a shared copy with no name left may be deleted."""

    def abort_abandoned_writes(self, older_than: float, dry_run: bool) -> list[str]:
        """Writes the store keeps open out of sight of any listing (S3's multipart uploads
        under the root) started over ``older_than`` seconds ago: aborted, and named."""

    def stat(self, path: Path) -> os.stat_result | None:
        """Size, identity (``st_ino``), link count and times; None when absent."""

    def exists(self, path: Path) -> bool: ...

    def read_bytes(self, path: Path, limit: int | None = None) -> bytes:
        """The file's bytes (at most ``limit + 1`` when given); FileNotFoundError if absent."""

    def open_read(self, path: Path, offset: int = 0) -> BinaryIO:
        """A reader positioned at ``offset``: streaming reads and ranges."""

    def local_file(self, path: Path) -> Path | None:
        """A local file the server may hand to sendfile, or None (then stream a reader)."""

    def object_url(self, path: Path, expires: int, method: UrlMethod = "GET") -> str | None:
        """A URL whoever holds it may GET the file's bytes from for ``expires`` seconds
        (an object store's presigned GET; ``HEAD``: its size, identity and metadata), or
        None when only this process reads them (a local file). Made without a round trip:
        the server streams from it, or redirects."""

    def url_answer(self, headers: Mapping[str, str]) -> tuple[os.stat_result, Path | None] | None:
        """What a GET or HEAD of an :meth:`object_url` told of the object, from the
        answer's headers (looked up in any case): its stat, equal to what :meth:`stat`
        gives when it is not a reference (the integrity stamp compares the same fields),
        and the path it names when it is a reference. None when the headers do not say
        (an upload's state object, a header missing): ask :meth:`resolve` instead."""

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Replace ``path`` whole and durably: a crash leaves the old content or the new."""

    def write(self, path: Path, data: bytes) -> None:
        """Write a small file without a durability promise (an owner record)."""

    def create(self, path: Path) -> None:
        """Create an empty file; FileExistsError if there is one."""

    def open_append(self, path: Path) -> Appender:
        """Open an upload file for appending."""

    def move_into_place(self, src: Path, dest: Path) -> None:
        """Publish a finished, durable file under its final name in one step."""

    def link(self, src: Path, dest: Path, *, durable: bool = True) -> None:
        """Make ``dest`` name the bytes of ``src`` without copying them, atomically.

        FileNotFoundError when ``src`` is gone; LinkUnsupported when they cannot share
        (with ``by_reference``: ``src`` is neither in the shared store nor a reference).
        ``durable=False``: the new name need not survive a crash (a private pin, see
        ``duplicate_uploads``), so no folder is synced for it.
        """

    def replace_with_link(self, src: Path, dest: Path) -> None:
        """Turn an existing ``dest`` into a name of ``src``'s bytes (dedupe of a duplicate);
        a reader holding the old ``dest`` keeps reading it."""

    def copy(self, src: Path, dest: Path) -> None:
        """Copy ``src`` to ``dest`` durably, appearing whole; FileNotFoundError if absent."""

    def move(self, src: Path, dest: Path) -> None:
        """Move a file elsewhere under the root (quarantine), even across devices."""

    def delete(self, path: Path) -> bool:
        """Remove a file; False when it was already gone."""

    def make_dirs(self, path: Path) -> None:
        """Make a folder and its parents (no-op where folders do not exist)."""

    def list(self, folder: Path) -> list[Entry]:
        """The names directly in ``folder``; empty when it is absent."""

    def walk(self, folder: Path) -> Iterator[Listed]:
        """Every file below ``folder`` at any depth, in no set order; none when absent.

        For GC's look at a whole folder tree where one listing per folder would be one
        request per file (the entries beside object storage's shared copies): a bucket
        answers a thousand keys a request, whatever their depth."""

    def sync_file(self, path: Path) -> None:
        """Make the bytes written to ``path`` durable (before it is moved into place)."""

    def sync_dir(self, folder: Path) -> None:
        """Make renames, links and unlinks inside ``folder`` durable."""
