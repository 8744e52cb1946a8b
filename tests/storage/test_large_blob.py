"""A 1 GiB blob streams through dockyard without the server ever holding it in memory.

Pushed as Docker clients do (POST, one streamed PATCH with a chunked body, PUT ?digest=),
pulled back streaming and hashed. The server's peak RSS (VmHWM) must stay under 100 MiB.
Push and pull throughput are printed (``pytest -s``), never asserted.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, start_server

GiB = 1024**3
MiB = 1024**2
CHUNK = MiB
RSS_LIMIT = 100 * MiB


def payload(total: int, sink: hashlib._Hash) -> Iterator[bytes]:
    """``total`` bytes of random-looking data in 1 MiB chunks, fed to ``sink`` as they go.

    One random MiB is drawn once; each chunk stamps its counter over the start of it, so no
    two chunks are equal yet generating 1 GiB costs almost nothing.
    """
    base = bytearray(os.urandom(CHUNK))
    sent = 0
    counter = 0
    while sent < total:
        base[:16] = counter.to_bytes(8, "big") + os.urandom(8)
        chunk = bytes(base[: min(CHUNK, total - sent)])
        sink.update(chunk)
        sent += len(chunk)
        counter += 1
        yield chunk


def vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes (VmHWM in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (worker processes count as the server too)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:"):
                children.setdefault(int(line.split()[1]), []).append(int(entry.name))
                break
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


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
