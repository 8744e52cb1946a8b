"""The local filesystem behind the backend interface: hard links, sendfile and fsync.

Crash safety comes from one pattern: write to a hidden temp file beside the target,
fsync it, rename it over the target, fsync the folder. A reader sees the old file or the
new one, never a part; a crash leaves at most a hidden temp file, which no walk takes for
a blob.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from dockyard.storage.backend import Entry, LinkUnsupported, Listed, UrlMethod


def fsync_dir(path: Path) -> None:
    """Make a rename or link inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so a crash leaves either the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove_file(path: Path) -> bool:
    """Unlink ``path``; False when it was already gone."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _temp_beside(dest: Path, tag: str) -> Path:
    """A free name in ``dest``'s folder (hidden, so never taken for a blob)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{tag}.", suffix=".tmp")
    os.close(fd)
    os.unlink(name)
    return Path(name)


class FileAppender:
    """An upload file opened with ``O_APPEND``; each call is one system call or two."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def write(self, data: bytes | bytearray) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def sync(self) -> None:
        os.fsync(self._fd)

    def truncate(self, size: int) -> None:
        os.ftruncate(self._fd, size)

    def close(self) -> None:
        os.close(self._fd)


class LocalBackend:
    """Files under a local folder. Stateless, so it can be handed to a worker process."""

    #: Hard links: every name of a file is equal, none refers to another.
    by_reference = False

    def resolve(self, path: Path) -> tuple[Path, os.stat_result] | None:
        st = self.stat(path)
        return None if st is None else (path, st)

    def referenced(self, path: Path) -> bool:
        st = self.stat(path)
        return st is not None and st.st_nlink > 1

    def abort_abandoned_writes(self, older_than: float, dry_run: bool) -> list[str]:
        """A file system keeps no write out of sight: every upload is a file GC lists."""
        return []

    def stat(self, path: Path) -> os.stat_result | None:
        try:
            return os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def exists(self, path: Path) -> bool:
        return path.exists()

    def read_bytes(self, path: Path, limit: int | None = None) -> bytes:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit + 1)

    def open_read(self, path: Path, offset: int = 0) -> BinaryIO:
        f = open(path, "rb")  # noqa: SIM115 - handed to the caller, who closes it
        if offset:
            f.seek(offset)
        return f

    def local_file(self, path: Path) -> Path | None:
        return path

    def object_url(self, path: Path, expires: int, method: UrlMethod = "GET") -> str | None:
        return None  # sendfile serves it; nothing else may read the root

    def url_answer(self, headers: Mapping[str, str]) -> tuple[os.stat_result, Path | None] | None:
        return None  # no URLs, so no answers to read

    def write_atomic(self, path: Path, data: bytes) -> None:
        atomic_write(path, data)

    def write(self, path: Path, data: bytes) -> None:
        path.write_bytes(data)

    def create(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(exist_ok=False)

    def open_append(self, path: Path) -> FileAppender:
        return FileAppender(path)

    def move_into_place(self, src: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dest)
        fsync_dir(dest.parent)

    def link(self, src: Path, dest: Path, *, durable: bool = True) -> None:
        tmp = _temp_beside(dest, "link")
        try:
            os.link(src, tmp)
        except OSError as exc:
            if exc.errno in (errno.EMLINK, errno.EXDEV, errno.EPERM):
                raise LinkUnsupported(exc.errno, exc.strerror, str(src)) from exc
            raise
        try:
            os.replace(tmp, dest)
        except BaseException:
            remove_file(tmp)
            raise
        if durable:
            fsync_dir(dest.parent)

    def replace_with_link(self, src: Path, dest: Path) -> None:
        tmp = dest.with_name(f".adopt.{dest.name}.tmp")
        try:
            os.link(src, tmp)
            os.replace(tmp, dest)
        except OSError:
            remove_file(tmp)
            raise

    def copy(self, src: Path, dest: Path) -> None:
        tmp = _temp_beside(dest, "mount")
        try:
            shutil.copyfile(src, tmp)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, dest)
        finally:
            remove_file(tmp)
        fsync_dir(dest.parent)

    def move(self, src: Path, dest: Path) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(src, dest)
        except OSError:
            # The source is on another filesystem than the destination: copy, then drop.
            shutil.copy2(src, dest)
            remove_file(src)
        fsync_dir(src.parent)

    def delete(self, path: Path) -> bool:
        return remove_file(path)

    def make_dirs(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)

    def list(self, folder: Path) -> list[Entry]:
        try:
            with os.scandir(folder) as listing:
                return [
                    Entry(e.name, Path(e.path), e.is_dir(follow_symlinks=False), e.inode())
                    for e in listing
                ]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return []

    def walk(self, folder: Path) -> Iterator[Listed]:
        for parent, _, names in os.walk(folder):
            for name in names:
                path = Path(parent, name)
                st = self.stat(path)
                if st is not None:  # gone meanwhile: not listed
                    yield Listed(path, st.st_size, st.st_mtime)

    def sync_file(self, path: Path) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def sync_dir(self, folder: Path) -> None:
        fsync_dir(folder)


#: The one local backend (it holds no state).
LOCAL = LocalBackend()
