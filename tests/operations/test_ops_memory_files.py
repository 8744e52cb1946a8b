"""What a server leaves in ``/dev/shm``: its root's change counter, only while it runs.

The counter lives in memory (see ``storage/changes.py``); the last process of a root
removes it, so a machine does not collect one file per root ever served.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from conftest import start_server

from dockyard.storage.changes import in_memory_name
from dockyard.util.memory_fs import memory_folder

pytestmark = pytest.mark.skipif(memory_folder() is None, reason="no writable /dev/shm")


def _counter_file(root: Path) -> Path:
    memory = memory_folder()
    assert memory is not None
    return memory / in_memory_name(os.stat(root))


def test_the_counter_file_goes_with_the_last_process_of_its_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_server(root, "--workers", "2")
    try:
        assert httpx.get(f"{server.url}/v2/").status_code == 200
        counter = _counter_file(root)
        assert counter.exists()
        # A command-line pass over the same root shares it, and leaves it to the server.
        gc = subprocess.run(
            [sys.executable, "-m", "dockyard", "gc", "--root", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert gc.returncode == 0, gc.stderr
        assert counter.exists()
    finally:
        server.stop()
    assert not counter.exists()
