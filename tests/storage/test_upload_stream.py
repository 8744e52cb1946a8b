"""The streamed push path: a long PATCH of known length, read in large pieces.

dockyard asks the kernel to gather ~512 KiB before waking it for a body of known length
(``SO_RCVLOWAT``). These tests hold what that must never break: the last bytes of a body
are never held back, the next request on the same connection is answered, and a chunk
acknowledged with a 202 survives a kill -9 of the server.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from pathlib import Path

import httpx
from conftest import Server, start_server
from spec_helpers import sha256_digest, start_upload, with_params
from storage_helpers import client_of

MiB = 1024 * 1024
#: Above twice the low-water mark, so the large-piece reading is in use.
BODY = 3 * MiB + 1000


def _read_response(sock: socket.socket) -> bytes:
    """One response's head (and any body that came with it) off a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    return data


def _raw_patch(sock: socket.socket, path: str, body: bytes, pause_before_last: float) -> None:
    """PATCH ``body`` with its Content-Length, 64 KiB per write; the last 1000 bytes only
    after ``pause_before_last`` seconds, so they arrive alone."""
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode())
    first, last = body[:-1000], body[-1000:]
    for offset in range(0, len(first), 65536):
        sock.sendall(first[offset : offset + 65536])
    time.sleep(pause_before_last)
    sock.sendall(last)


def test_last_bytes_of_a_long_body_are_not_held_back(registry: Server, repo: str) -> None:
    """The tail arrives alone, well under the low-water mark: the 202 still comes at once,
    and the next request on the same connection (a few hundred bytes) is answered."""
    data = os.urandom(BODY)
    with client_of(registry) as c:
        url = start_upload(c, repo)
    path = url.removeprefix(registry.url)
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        _raw_patch(sock, path, data, pause_before_last=1.0)
        started = time.monotonic()
        answer = _read_response(sock)
        assert answer.startswith(b"HTTP/1.1 202"), answer[:200]
        assert time.monotonic() - started < 5
        assert f"Range: 0-{BODY - 1}".encode() in answer
        # Same connection: a small request must wake the server (the mark is back to 1).
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        status = _read_response(sock)
        assert status.startswith(b"HTTP/1.1 204"), status[:200]
    with client_of(registry) as c:
        done = c.put(with_params(url, {"digest": sha256_digest(data)}))
        assert done.status_code == 201, done.text
        blob = c.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
        assert blob.content == data


def test_a_client_that_stops_mid_body_is_not_left_waiting(registry: Server, repo: str) -> None:
    """A client that closes after part of a long body: the server notices (no hang) and
    keeps nothing of the cut PATCH."""
    with client_of(registry) as c:
        url = start_upload(c, repo)
    path = url.removeprefix(registry.url)
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        head = (
            f"PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {BODY}\r\n\r\n"
        )
        sock.sendall(head.encode() + os.urandom(100_000))
    # The cut PATCH must let go of the session (it holds the session's lock while it
    # reads): a fresh chunk from offset 0 is taken, so nothing of the cut one was kept.
    with httpx.Client(base_url=registry.url, timeout=10) as c:
        fresh = os.urandom(100)
        resp = c.patch(
            url,
            content=fresh,
            headers={"Content-Range": "0-99", "Content-Type": "application/octet-stream"},
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["Range"] == "0-99"


def test_an_acknowledged_long_chunk_survives_kill_9(tmp_path: Path) -> None:
    """PATCH a long chunk of known length, 202, SIGKILL the server, start it again: the
    session holds every byte, and the upload finishes into the right blob."""
    server = start_server(tmp_path / "data")
    repo = f"kill9/{uuid.uuid4().hex[:8]}"
    data = os.urandom(BODY)
    try:
        with client_of(server) as c:
            url = start_upload(c, repo)
            sent = c.patch(url, content=data, headers={"Content-Type": "application/octet-stream"})
            assert sent.status_code == 202, sent.text
        assert server.proc is not None
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        server.start()
        with client_of(server) as c:
            status = c.get(url)
            assert status.status_code == 204
            assert status.headers["Range"] == f"0-{BODY - 1}"
            done = c.put(with_params(url, {"digest": sha256_digest(data)}))
            assert done.status_code == 201, done.text
            blob = c.get(f"/v2/{repo}/blobs/{sha256_digest(data)}")
            assert blob.status_code == 200 and blob.content == data
    finally:
        server.stop()


def test_chunks_of_a_streamed_push_land_in_order(registry: Server, repo: str) -> None:
    """Several long PATCHes with Content-Range, then PUT: the blob is their concatenation
    (pieces handed to the write thread without a copy keep their order)."""
    parts = [os.urandom(BODY + n) for n in range(3)]
    with httpx.Client(base_url=registry.url, timeout=60) as c:
        url = start_upload(c, repo)
        offset = 0
        for part in parts:
            end = offset + len(part) - 1
            resp = c.patch(
                url,
                content=part,
                headers={
                    "Content-Range": f"{offset}-{end}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert resp.status_code == 202, resp.text
            offset = end + 1
        whole = b"".join(parts)
        done = c.put(with_params(url, {"digest": sha256_digest(whole)}))
        assert done.status_code == 201, done.text
        assert c.get(f"/v2/{repo}/blobs/{sha256_digest(whole)}").content == whole


def test_a_long_chunk_refused_before_its_body_leaves_the_connection_usable(
    registry: Server, repo: str
) -> None:
    """A long PATCH at the wrong offset gets 416 without its body being read; the next
    request on the same connection is still answered (see also the full-disk test, where
    the body is cut midway by ENOSPC)."""
    with client_of(registry) as c:
        url = start_upload(c, repo)
        data = os.urandom(BODY)
        wrong = c.patch(
            url,
            content=data,
            headers={
                "Content-Range": f"5-{BODY + 4}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert wrong.status_code == 416, wrong.text
        status = c.get(url)  # same client, same kept-alive connection when the server kept it
        assert status.status_code == 204 and status.headers["Range"] == "0-0"
        right = c.patch(url, content=data, headers={"Content-Type": "application/octet-stream"})
        assert right.status_code == 202, right.text
        assert right.headers["Range"] == f"0-{BODY - 1}"
