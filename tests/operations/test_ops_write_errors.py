"""A write that fails for a reason other than a full disk is not 507.

Only ENOSPC and EDQUOT are ``507 STORAGE_FULL`` (see test_ops_disk_full.py). Any other
failed write (a read-only filesystem, a file the kernel refuses to change) answers 500
with the spec's JSON body, logs its cause in one error line with no traceback, and
publishes nothing. The failures are real, made as root (root ignores permission bits):
a read-only bind mount over the repository (EROFS), and an immutable blobs folder
(``chattr +i``: EPERM).
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Server, start_server
from ops_helpers import json_lines
from spec_helpers import (
    OCI_MANIFEST,
    assert_error,
    dumps,
    push_image,
    random_blob,
    sha256_digest,
    start_upload,
    with_params,
)
from storage_helpers import blob_file, client_of, index_digests


def _root_only() -> None:
    if os.geteuid() != 0:
        pytest.fail("these tests mount and chattr, so they need root (as CI runs)")


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(cmd)}: {done.stderr}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    started = start_server(tmp_path / "data")
    yield started
    started.stop()


def error_lines(server: Server) -> list[dict[str, object]]:
    return [d for d in json_lines(server.output()) if d.get("level") == "error"]


def assert_logged_once(server: Server, before: int, cause: str) -> None:
    """One new error line naming ``cause``; no traceback anywhere in the log."""
    new = error_lines(server)[before:]
    assert len(new) == 1, f"expected one error line, got {new}"
    assert cause in str(new[0]["message"]), new[0]
    assert "error" not in new[0], f"a traceback was logged: {new[0]}"
    assert "Traceback" not in server.output()


def test_read_only_repository_answers_500_not_507(server: Server, tmp_path: Path) -> None:
    """EROFS on a new session, a chunk, a final PUT, a monolithic upload, a manifest push."""
    _root_only()
    root, repo = tmp_path / "data", f"ro/{uuid.uuid4().hex[:8]}"
    folder = root / repo
    with client_of(server) as c:
        kept = push_image(c, repo, "v1")
        session = start_upload(c, repo)
        assert c.patch(session, content=b"first chunk").status_code == 202
        data = b"first chunk" + random_blob(1000)
        digest = sha256_digest(data)
        _run("mount", "--bind", str(folder), str(folder))
        try:
            _run("mount", "-o", "remount,ro,bind", str(folder))
            cause = "Read-only file system"
            seen = len(error_lines(server))
            attempts = {
                "POST": lambda: c.post(f"/v2/{repo}/blobs/uploads/"),
                "PATCH": lambda: c.patch(session, content=data[11:]),
                "PUT": lambda: c.put(with_params(session, {"digest": digest}), content=data[11:]),
                "monolithic POST": lambda: c.post(
                    f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=data
                ),
                "manifest PUT": lambda: c.put(
                    f"/v2/{repo}/manifests/v2",
                    content=dumps({**kept.manifest, "annotations": {"n": "1"}}),
                    headers={"Content-Type": OCI_MANIFEST},
                ),
            }
            for what, attempt in attempts.items():
                resp = attempt()
                assert_error(resp, 500, "UNKNOWN")
                assert "STORAGE_FULL" not in resp.text, f"{what}: {resp.text}"
                assert_logged_once(server, seen, cause)
                seen += 1
            assert c.get(f"/v2/{repo}/manifests/v1").status_code == 200, "reads stopped"
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        assert_error(c.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        assert not blob_file(root, repo, digest).exists()
        assert index_digests(root, repo) == {kept.digest}
        # The session kept what it had: the client finishes the upload once writes work.
        resp = c.put(with_params(session, {"digest": digest}), content=data[11:])
        assert resp.status_code == 201, resp.text
        assert c.get(f"/v2/{repo}/blobs/{digest}").content == data


def test_publish_refused_by_the_filesystem_answers_500(server: Server, tmp_path: Path) -> None:
    """EPERM when the final PUT moves the upload into an immutable blobs folder."""
    _root_only()
    root, repo = tmp_path / "data", f"imm/{uuid.uuid4().hex[:8]}"
    with client_of(server) as c:
        push_image(c, repo, "v1")
        session = start_upload(c, repo)
        data = random_blob(3000)
        digest = sha256_digest(data)
        assert c.patch(session, content=data).status_code == 202
        blobs = root / repo / "blobs" / "sha256"
        _run("chattr", "+i", str(blobs))
        try:
            seen = len(error_lines(server))
            resp = c.put(with_params(session, {"digest": digest}))
            assert_error(resp, 500, "UNKNOWN")
            assert_logged_once(server, seen, "Operation not permitted")
            assert_error(c.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        finally:
            _run("chattr", "-i", str(blobs))
        assert not blob_file(root, repo, digest).exists(), "a refused blob was published"
        assert [p for p in (root / repo / ".uploads").iterdir()] == [], "the session was kept"
