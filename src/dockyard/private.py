"""``ROOT/_dockyard/``: the server's private folder (API key hashes, caches, quarantine).

The API keys' SHA-256 hashes, the dedupe map (every repository's blob paths) and the
quarantine (bytes that were pushed) are no one else's business, so the folder is 0700
and every database file in it 0600, whatever the umask. A folder or file an older
version left with looser modes is tightened the first time the server opens it after
start; one the server does not own (chmod refused) is left as is, with a warning.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("dockyard.storage")

FOLDER_MODE = 0o700
FILE_MODE = 0o600
#: SQLite's companions of a database file, which it creates with the database's mode.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def _tighten(path: Path, mode: int) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if st.st_mode & 0o777 & ~mode:
        try:
            os.chmod(path, mode)
        except PermissionError:
            log.warning("cannot make %s private (mode %o): not its owner", path, mode)


def private_folder(path: Path) -> Path:
    """Create ``path`` (and its parents) if missing; the folder itself ends up 0700."""
    try:
        path.mkdir(mode=FOLDER_MODE)
    except FileExistsError:
        pass
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.mkdir(mode=FOLDER_MODE, exist_ok=True)
    _tighten(path, FOLDER_MODE)
    return path


def private_database(path: Path) -> None:
    """Make the folder of ``path`` private and create the database file 0600 before
    SQLite opens it; an existing one (and its -wal/-shm) is tightened."""
    private_folder(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    for suffix in SQLITE_SUFFIXES:
        _tighten(path.with_name(path.name + suffix), FILE_MODE)
