"""``ROOT/_dockyard/`` holds the API key hashes and the caches: nobody else may read it.

The folder is 0700 and every database in it (``apikeys.db``, ``cache.db``,
``verified.db``, with their ``-wal`` and ``-shm``) is 0600, whatever the umask, and a
root left by an older version with 0755/0644 is tightened when the server starts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from auth_helpers import client_for, serving, write_config, write_htpasswd
from spec_helpers import image_manifest, push_manifest


def _modes(folder: Path) -> dict[str, int]:
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}


def _assert_private(root: Path) -> None:
    folder = root / "_dockyard"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    modes = _modes(folder)
    dbs = {name: mode for name, mode in modes.items() if ".db" in name}
    for name in ("apikeys.db", "apikeys.db-wal", "apikeys.db-shm", "verified.db", "cache.db"):
        assert name in dbs, sorted(modes)
    assert all(mode == 0o600 for mode in dbs.values()), {n: oct(m) for n, m in dbs.items()}


def test_the_key_database_and_caches_are_private(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "alice-pw"})
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True}},
        storage={"rootDirectory": str(tmp_path / "data"), "dedupe": True},
    )
    root = tmp_path / "data"
    old_umask = os.umask(0o022)  # what most services run with: 0644 files by default
    try:
        with serving(root, config) as server, client_for(server, "alice", "alice-pw") as c:
            assert c.post("/zot/auth/apikey", json={"label": "ci"}).status_code == 201
            push_manifest(c, "alice/app", image_manifest(c, "alice/app"), "v1")
            assert c.get("/readyz").status_code == 200  # the probe writes under _dockyard
            _assert_private(root)
        # An older root, with the modes a 0022 umask gave: tightened on the next start.
        folder = root / "_dockyard"
        folder.chmod(0o755)
        for path in folder.iterdir():
            if path.is_file():
                path.chmod(0o644)
        with serving(root, config) as server, client_for(server, "alice", "alice-pw") as c:
            assert c.get("/zot/auth/apikey").status_code == 200
            assert c.get("/readyz").status_code == 200
            _assert_private(root)
    finally:
        os.umask(old_umask)
