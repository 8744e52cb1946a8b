"""A large blob download: sendfile with a send buffer large enough for a slow reader.

The server asks for a 4 MiB send buffer (8 MiB as the kernel counts it) before it sends
a large blob, so a client that reads in small pieces is not left waiting between the
loop's refills. Read from ``ss`` while a client holds the download half-read.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import time
from pathlib import Path

from conftest import Server
from spec_helpers import push_blob
from storage_helpers import client_of

MiB = 1024 * 1024


def _send_buffers(port: int) -> list[int]:
    """The send buffer (``skmem`` tb) of each connection the server holds on ``port``."""
    out = subprocess.run(
        ["ss", "-tmnH", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(m) for m in re.findall(r"\btb(\d+)", out)]


def _get(sock: socket.socket, path: str) -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())


def test_large_blob_gets_a_large_send_buffer_and_arrives_whole(registry: Server, repo: str) -> None:
    data = os.urandom(24 * MiB)
    small = os.urandom(MiB)
    with client_of(registry) as c:
        digest = push_blob(c, repo, data)
        small_digest = push_blob(c, repo, small)
    with socket.create_connection(("127.0.0.1", registry.port), timeout=30) as sock:
        # A small blob first: it keeps the kernel's own, autotuned buffer.
        _get(sock, f"/v2/{repo}/blobs/{small_digest}")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        got = len(head.split(b"\r\n\r\n", 1)[1])
        while got < len(small):
            got += len(sock.recv(min(65536, len(small) - got)))
        small_buffers = _send_buffers(registry.port)
        # Then the large one, read only in part: the server's socket has the large buffer.
        _get(sock, f"/v2/{repo}/blobs/{digest}")
        start = sock.recv(65536)
        time.sleep(0.5)
        large_buffers = _send_buffers(registry.port)
        body = start.split(b"\r\n\r\n", 1)[1]
        hasher = hashlib.sha256(body)
        got = len(body)
        while got < len(data):
            piece = sock.recv(1 << 20)
            assert piece, "connection closed early"
            hasher.update(piece)
            got += len(piece)
    # What the kernel grants for 4 MiB asked: twice the request, capped by wmem_max.
    granted = 2 * min(4 * MiB, int(Path("/proc/sys/net/core/wmem_max").read_text()))
    assert small_buffers and max(small_buffers) < granted
    assert max(large_buffers) >= granted, large_buffers
    assert f"sha256:{hasher.hexdigest()}" == digest


def test_a_range_of_a_large_blob_is_still_exact(registry: Server, repo: str) -> None:
    data = os.urandom(8 * MiB + 5)
    with client_of(registry) as c:
        digest = push_blob(c, repo, data)
        part = c.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=5000000-8388612"})
        assert part.status_code == 206
        assert part.content == data[5000000:8388613]
