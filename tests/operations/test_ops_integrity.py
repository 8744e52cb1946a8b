"""A blob whose bytes on disk no longer match its digest is never served as if it were good.

Damage that changes the file (rewritten, truncated, replaced) is caught on the GET itself:
the file is hashed before a byte goes out, moved to quarantine, and the client gets
BLOB_UNKNOWN, so it pushes the blob again. A blob the server never hashed (an adopted
layout) is hashed once on first read, then served from its stamp.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path

from conftest import start_server
from spec_helpers import assert_error, push_blob, push_image, sha256_digest
from storage_helpers import blob_file, client_of


def _quarantined(root: Path) -> list[Path]:
    folder = root / "_dockyard" / "quarantine"
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_rewritten_or_truncated_blob_is_quarantined_not_served(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_server(root)
    repo = f"rot/{uuid.uuid4().hex[:8]}"
    try:
        with client_of(server) as c:
            good = os.urandom(256 * 1024)
            digest = push_blob(c, repo, good)
            other = os.urandom(4096)
            other_digest = push_blob(c, repo, other)
            assert c.get(f"/v2/{repo}/blobs/{digest}").content == good

            path = blob_file(root, repo, digest)
            path.write_bytes(os.urandom(len(good)))  # same size, other bytes
            resp = c.get(f"/v2/{repo}/blobs/{digest}")
            assert_error(resp, 404, "BLOB_UNKNOWN")
            assert "integrity" in resp.text
            assert not path.exists()
            assert len(_quarantined(root)) == 1
            assert c.head(f"/v2/{repo}/blobs/{digest}").status_code == 404

            with open(blob_file(root, repo, other_digest), "r+b") as f:
                f.truncate(100)
            assert_error(c.get(f"/v2/{repo}/blobs/{other_digest}"), 404, "BLOB_UNKNOWN")
            assert len(_quarantined(root)) == 2

            # The client pushes again; the good bytes are served.
            assert push_blob(c, repo, good) == digest
            again = c.get(f"/v2/{repo}/blobs/{digest}")
            assert again.status_code == 200 and sha256_digest(again.content) == digest
    finally:
        server.stop()


def test_corrupt_manifest_is_not_served(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_server(root)
    repo = f"rot/{uuid.uuid4().hex[:8]}"
    try:
        with client_of(server) as c:
            pushed = push_image(c, repo, "v1")
            path = blob_file(root, repo, pushed.digest)
            body = bytearray(path.read_bytes())
            body[-2] = ord(" ") if body[-2] != ord(" ") else ord("\t")
            server.stop()  # a fresh process: nothing of the manifest is cached in memory
            path.write_bytes(bytes(body))
            server.start()
            resp = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": pushed.media_type})
            assert resp.status_code == 404, resp.text
            assert resp.content != bytes(body)
    finally:
        server.stop()


def test_unverified_blob_is_hashed_once_then_stamped(tmp_path: Path) -> None:
    """A layout written by another tool: its blobs have no stamp until first read."""
    root = tmp_path / "data"
    repo_dir = root / "adopted"
    layer = os.urandom(64)
    digest = sha256_digest(layer)
    blobs = repo_dir / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (blobs / digest.split(":")[1]).write_bytes(layer)
    (repo_dir / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (repo_dir / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    server = start_server(root)
    try:
        with client_of(server) as c:
            resp = c.get(f"/v2/adopted/blobs/{digest}")
            assert resp.status_code == 200 and sha256_digest(resp.content) == digest
    finally:
        server.stop()
    db = sqlite3.connect(root / "_dockyard" / "verified.db")
    try:
        rows = db.execute("SELECT digest FROM verified").fetchall()
    finally:
        db.close()
    assert (digest,) in rows
