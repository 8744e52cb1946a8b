"""A root's change counter: in memory, shared by every opener of the root, never a
planted file.

The counter is bumped on the event loop; on a disk filesystem that write waited for the
journal while GC unlinked many files, so it lives in ``/dev/shm`` when it can.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockyard.storage.changes import in_memory_name, open_counter
from dockyard.storage.paths import changes_path
from dockyard.util.memory_fs import memory_folder

pytestmark = pytest.mark.skipif(memory_folder() is None, reason="no writable /dev/shm")


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "root"
    folder.mkdir()
    yield folder
    memory = memory_folder()
    assert memory is not None
    (memory / in_memory_name(os.stat(folder))).unlink(missing_ok=True)


def _in_memory(root: Path) -> Path:
    memory = memory_folder()
    assert memory is not None
    return memory / in_memory_name(os.stat(root))


def test_the_counter_lives_in_memory_and_every_path_to_the_root_shares_it(
    root: Path, tmp_path: Path
) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    writer, reader = open_counter(root), open_counter(alias)
    try:
        before = reader.seen()
        writer.bump()
        assert reader.seen() != before
        assert _in_memory(root).stat().st_size > 0
        assert _in_memory(root).stat().st_mode & 0o077 == 0
        assert not changes_path(root).exists()
    finally:
        writer.close()
        reader.close()


def test_a_planted_world_writable_file_is_refused_for_the_disk_copy(root: Path) -> None:
    planted = _in_memory(root)
    planted.write_bytes(b"\0" * 8)
    planted.chmod(0o666)
    counter = open_counter(root)
    try:
        counter.bump()
        assert changes_path(root).stat().st_size > 0
        assert planted.read_bytes() == b"\0" * 8
    finally:
        counter.close()


def test_a_planted_symlink_is_not_followed(root: Path, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_bytes(b"keep")
    _in_memory(root).symlink_to(target)
    counter = open_counter(root)
    try:
        counter.bump()
        assert target.read_bytes() == b"keep"
        assert changes_path(root).exists()
    finally:
        counter.close()


def test_the_last_holder_removes_the_file_and_not_before(root: Path) -> None:
    first, second = open_counter(root), open_counter(root)
    first.bump()
    first.close()
    assert _in_memory(root).exists(), "removed while another process still counts on it"
    before = second.seen()
    third = open_counter(root)
    third.bump()
    assert second.seen() != before, "a later opener got a file of its own"
    second.close()
    third.close()
    assert not _in_memory(root).exists()


def test_a_forked_child_closing_leaves_the_parents_file(root: Path) -> None:
    counter = open_counter(root)
    try:
        pid = os.fork()
        if pid == 0:  # the child: lets go of what it inherited, and exits
            counter.close()
            os._exit(0)
        os.waitpid(pid, 0)
        assert _in_memory(root).exists()
        before = counter.seen()
        other = open_counter(root)
        other.bump()
        other.close()
        assert counter.seen() != before
    finally:
        counter.close()
    assert not _in_memory(root).exists()
