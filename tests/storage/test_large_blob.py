"""A 1 GiB blob streams through dockyard without the server ever holding it in memory.

Pushed as Docker clients do (POST, one streamed PATCH with a chunked body, PUT ?digest=),
pulled back streaming and hashed. The server's peak RSS (VmHWM) must stay under 100 MiB.
Push and pull throughput are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, start_server
from storage_helpers import CHUNK, MiB, payload, process_tree, vm_hwm

GiB = 1024**3
RSS_LIMIT = 100 * MiB


@pytest.fixture
def big_server(tmp_path: Path) -> Iterator[Server]:
    """A server of this test's own, so nothing else moves its RSS."""
    server = start_server(tmp_path / "data")
    yield server
    server.stop()


def test_one_gib_blob_streams_in_and_out_in_bounded_memory(big_server: Server) -> None:
    """A 1 GiB blob pushed by streamed PATCH pulls back intact; server peak RSS < 100 MiB."""
    assert big_server.proc is not None
    repo = "large/blob"
    sent_hash = hashlib.sha256()
    with httpx.Client(base_url=big_server.url, timeout=httpx.Timeout(300, connect=10)) as client:
        started = time.perf_counter()
        post = client.post(f"/v2/{repo}/blobs/uploads/")
        assert post.status_code == 202, post.text
        patch = client.patch(
            post.headers["Location"],
            content=payload(GiB, sent_hash),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert patch.status_code == 202, patch.text
        assert patch.headers.get("Range") == f"0-{GiB - 1}"
        digest = "sha256:" + sent_hash.hexdigest()
        # Keep the Location's own query (upload state) and add the digest to it.
        put = client.put(httpx.URL(patch.headers["Location"]).copy_add_param("digest", digest))
        assert put.status_code == 201, put.text
        assert put.headers.get("Docker-Content-Digest") == digest
        push_seconds = time.perf_counter() - started

        head = client.head(f"/v2/{repo}/blobs/{digest}")
        assert head.status_code == 200
        assert int(head.headers["Content-Length"]) == GiB

        got_hash = hashlib.sha256()
        received = 0
        started = time.perf_counter()
        with client.stream("GET", f"/v2/{repo}/blobs/{digest}") as resp:
            assert resp.status_code == 200
            assert int(resp.headers["Content-Length"]) == GiB
            for chunk in resp.iter_bytes(CHUNK):
                got_hash.update(chunk)
                received += len(chunk)
        pull_seconds = time.perf_counter() - started

    assert received == GiB
    assert "sha256:" + got_hash.hexdigest() == digest

    peaks = {pid: vm_hwm(pid) for pid in process_tree(big_server.proc.pid)}
    print(
        f"\n1 GiB blob: push {GiB / MiB / push_seconds:.0f} MiB/s ({push_seconds:.1f} s), "
        f"pull {GiB / MiB / pull_seconds:.0f} MiB/s ({pull_seconds:.1f} s), "
        "peak RSS " + ", ".join(f"pid {pid}: {peak / MiB:.1f} MiB" for pid, peak in peaks.items())
    )
    assert peaks[big_server.proc.pid] < RSS_LIMIT
    for pid, peak in peaks.items():
        assert peak < RSS_LIMIT, f"server process {pid} peaked at {peak / MiB:.1f} MiB"
