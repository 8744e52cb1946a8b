"""Helpers for the command-line tests: run ``python -m dockyard`` as a user would.

Permission failures (an unreadable root, an unwritable log folder) cannot be shown as
root, who may read and write anything. When the tests run as root, ``unprivileged=True``
runs the command as ``nobody`` through ``setpriv``, so the same test holds either way.
Folders such a command must reach are made with :func:`open_folder` (``tmp_path`` sits
under a folder only its owner may enter).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

NOBODY = 65534


def dockyard(
    *args: str, cwd: Path | None = None, timeout: float = 60, unprivileged: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dockyard ARGS`` to completion and capture its output."""
    cmd = [sys.executable, "-m", "dockyard", *args]
    if unprivileged and os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)


@contextmanager
def open_folder() -> Iterator[Path]:
    """A fresh folder anyone may enter (for ``unprivileged`` commands); removed after."""
    folder = Path(tempfile.mkdtemp(prefix="dockyard-cli-"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        for path in [folder, *folder.rglob("*")]:  # undo the tests' chmod 000 before removing
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(folder)


def write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def config_doc(root: Path, **log: str) -> dict[str, Any]:
    """A config serving ``root`` on loopback, with ``log`` keys (output, audit) added."""
    return {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root)},
        "http": {"address": "127.0.0.1", "port": 5000},
        "log": {"level": "info", **log},
    }


def listening(port: int) -> bool:
    """Whether something answers HTTP on 127.0.0.1:``port``."""
    try:
        httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


def held_port() -> socket.socket:
    """A socket listening on a free loopback port: that port is busy while it is open."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def full_listing(folder: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every entry under ``folder``, itself included: (kind, size, mtime_ns, mode).

    Folders are in it with their mtime, so a file created and removed again still shows.
    """
    found = {}
    for path in [folder, *sorted(folder.rglob("*"))]:
        st = path.lstat()
        kind = "dir" if stat.S_ISDIR(st.st_mode) else "file"
        found[str(path.relative_to(folder))] = (kind, st.st_size, st.st_mtime_ns, st.st_mode)
    return found


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Failed with no traceback, and one line of stderr says what (holding every word)."""
    assert proc.returncode != 0, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"want one line, got:\n{proc.stderr}"
    for word in words:
        assert word in lines[0], f"{word!r} not in {lines[0]!r}"
    return lines[0]
