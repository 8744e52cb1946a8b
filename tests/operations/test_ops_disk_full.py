"""A full disk: a real one, an 8 MiB tmpfs mounted for the test (needs root, as CI is).

The request that fills it fails with 507 and a JSON body that says so, the partial upload
is discarded (its space freed at once), nothing is published, and the server keeps
serving; ``/readyz`` says not ready while the disk stays full.
"""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Server, start_server
from spec_helpers import (
    OCI_MANIFEST,
    assert_error,
    dumps,
    get_manifest,
    push_blob,
    push_image,
    sha256_digest,
    start_upload,
    with_params,
)
from storage_helpers import blob_files, client_of, index_digests

SIZE = 8 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("the full-disk tests mount a tmpfs and need root (as CI runs)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    assert mounted.returncode == 0, f"cannot mount a tmpfs as root: {mounted.stderr}"
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def full_server(small_disk: Path) -> Iterator[Server]:
    server = start_server(small_disk / "data")
    yield server
    server.stop()


def _used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _leftovers(root: Path) -> list[Path]:
    """Upload sessions and temp files: what a failed write could leave behind."""
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and (".uploads" in p.parts or p.name.endswith(".tmp"))
    ]


def test_filling_upload_fails_cleanly_and_the_server_keeps_serving(
    full_server: Server, small_disk: Path
) -> None:
    root = small_disk / "data"
    repo = f"full/{uuid.uuid4().hex[:8]}"
    with client_of(full_server) as c:
        kept = push_image(c, repo, "v1")
        used_before = _used(small_disk)
        big = os.urandom(12 * 1024 * 1024)  # more than the whole disk
        digest = sha256_digest(big)

        url = start_upload(c, repo)
        resp = c.patch(url, content=iter([big[i : i + 65536] for i in range(0, len(big), 65536)]))
        assert_error(resp, 507, "STORAGE_FULL")
        assert "no space" in resp.json()["errors"][0]["message"]
        assert_error(c.get(url), 404, "BLOB_UPLOAD_UNKNOWN")  # discarded, not half-kept
        assert _used(small_disk) - used_before < 512 * 1024, "the partial upload kept its space"

        mono = c.post(f"/v2/{repo}/blobs/uploads/", params={"digest": digest}, content=big)
        assert_error(mono, 507, "STORAGE_FULL")

        put_url = start_upload(c, repo)
        put = c.put(with_params(put_url, {"digest": digest}), content=big)
        assert_error(put, 507, "STORAGE_FULL")

        # Nothing published, nothing half-written.
        assert_error(c.get(f"/v2/{repo}/blobs/{digest}"), 404, "BLOB_UNKNOWN")
        assert digest.split(":")[1] not in {p.name for p in blob_files(root)}
        assert _leftovers(root) == []

        # Still serving: reads, and writes that fit.
        assert c.get("/v2/").status_code == 200
        got = get_manifest(c, repo, "v1")
        assert got.status_code == 200 and got.content == kept.body
        for blob in kept.blobs:
            assert c.get(f"/v2/{repo}/blobs/{blob}").status_code == 200
        small = push_blob(c, repo, os.urandom(100 * 1024))
        assert c.get(f"/v2/{repo}/blobs/{small}").status_code == 200
        assert c.get("/readyz").status_code == 200


def _fill(disk: Path) -> Path:
    """Write a file until the filesystem refuses another byte."""
    filler = disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_full_disk_makes_readyz_fail_and_manifest_push_507(
    full_server: Server, small_disk: Path
) -> None:
    root = small_disk / "data"
    repo = f"full/{uuid.uuid4().hex[:8]}"
    with client_of(full_server) as c:
        kept = push_image(c, repo, "v1")
        manifest = {**kept.manifest, "annotations": {"n": uuid.uuid4().hex}}
        filler = _fill(small_disk)
        try:
            ready = c.get("/readyz")
            assert ready.status_code == 503, ready.text
            assert str(root) in ready.json()["roots"]
            assert c.get("/livez").status_code == 200

            body = dumps(manifest)
            resp = c.put(
                f"/v2/{repo}/manifests/v2", content=body, headers={"Content-Type": OCI_MANIFEST}
            )
            assert_error(resp, 507, "STORAGE_FULL")
            assert sha256_digest(body) not in index_digests(root, repo)
            assert get_manifest(c, repo, "v2").status_code == 404
            assert get_manifest(c, repo, "v1").content == kept.body
            assert _leftovers(root) == []
        finally:
            filler.unlink()
        assert c.get("/readyz").status_code == 200
        resp = c.put(
            f"/v2/{repo}/manifests/v2",
            content=dumps(manifest),
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert resp.status_code == 201, resp.text
