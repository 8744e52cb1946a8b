"""``/livez``, ``/readyz`` (storage reachable and writable), ``/startupz``, as zot has them.

The full-disk case of ``/readyz`` lives in ``test_ops_disk_full.py`` (it needs a small
filesystem of its own).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import start_server
from storage_helpers import client_of


def test_probes_answer_json(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        with client_of(server) as c:
            for path, status in (("/livez", "ok"), ("/startupz", "started"), ("/readyz", "ready")):
                resp = c.get(path)
                assert resp.status_code == 200, (path, resp.text)
                assert resp.json()["status"] == status
                assert c.head(path).status_code == 200
            # The probe file is removed again: nothing accumulates under _dockyard.
            leftovers = [p.name for p in (tmp_path / "data" / "_dockyard").iterdir()]
            assert not [n for n in leftovers if "readyz" in n], leftovers
    finally:
        server.stop()


def test_readyz_fails_when_the_root_is_gone_while_livez_stays_up(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_server(root)
    try:
        with client_of(server) as c:
            assert c.get("/readyz").status_code == 200
            shutil.rmtree(root)
            resp = c.get("/readyz")
            assert resp.status_code == 503, resp.text
            body = resp.json()
            assert body["status"] == "not ready"
            assert str(root) in body["roots"], body
            assert c.get("/livez").status_code == 200
            root.mkdir()
            assert c.get("/readyz").status_code == 200
    finally:
        server.stop()
