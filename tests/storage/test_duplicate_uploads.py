"""Duplicate monolithic uploads: bytes the root holds, or is storing right now, are hashed
and never written, and the stored copy is linked in once they match.

"Never written" is read from the kernel: ``wchar`` of the server's processes (every byte
handed to ``write``) grows by one copy of the blob, not one per upload. A first upload is
held mid-body (:class:`HeldPut`) so the duplicate surely arrives while it is in flight.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
from conftest import Server
from held_upload_helpers import (
    HeldPut,
    bytes_written,
    connect,
    file_size,
    open_session,
    session_file,
)
from spec_helpers import push_blob, sha256_digest
from storage_helpers import blob_file, client_of, inode, serving, wait_until
from workers_helpers import connection_to, start_workers, worker_pids

MiB = 1024**2
SIZE = 8 * MiB
HEAD = 4 * MiB


def _blob(size: int = SIZE) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, sha256_digest(data)


def _writer_in_flight(root: Path, repo: str, location: str) -> None:
    """Until the held upload has stored bytes of its first part: it claimed the digest.
    (Not all of it: the server reads and writes in large pieces, the last few of which
    wait for more bytes.)"""
    path = session_file(root, repo, location)
    wait_until(lambda: file_size(path) > 0, 30, "the first upload to store bytes")


def _uploads_left(root: Path, repo: str) -> list[str]:
    folder = root / repo / ".uploads"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def _serves(server: Server, repo: str, digest: str, data: bytes) -> None:
    with client_of(server) as c:
        got = c.get(f"/v2/{repo}/blobs/{digest}")
    assert got.status_code == 200 and got.content == data, (repo, got.status_code)


def test_duplicate_of_a_stored_blob_is_hashed_not_written(fresh_registry: Server) -> None:
    """A push of bytes another repository holds writes none of them: the stored copy is
    linked in (one inode) once the body hashed to the digest."""
    root = fresh_registry.root
    data, digest = _blob()
    with client_of(fresh_registry) as c:
        push_blob(c, "dup/stored-a", data)
        before = bytes_written(fresh_registry)
        push_blob(c, "dup/stored-b", data)
        written = bytes_written(fresh_registry) - before
        assert written < MiB, f"the duplicate's {SIZE} bytes were written ({written} bytes)"
        before = bytes_written(fresh_registry)  # and the one-request form, POST ?digest=
        resp = c.post("/v2/dup/stored-c/blobs/uploads/", params={"digest": digest}, content=data)
        assert resp.status_code == 201, resp.text
        written = bytes_written(fresh_registry) - before
        assert written < MiB, f"POST ?digest=: {written} bytes written"
        assert inode(blob_file(root, "dup/stored-c", digest)) == inode(
            blob_file(root, "dup/stored-a", digest)
        )
    one, two = blob_file(root, "dup/stored-a", digest), blob_file(root, "dup/stored-b", digest)
    assert inode(one) == inode(two) and os.stat(one).st_nlink == 3
    # No session file, owner record or pin left behind.
    assert _uploads_left(root, "dup/stored-b") == _uploads_left(root, "dup/stored-c") == []
    _serves(fresh_registry, "dup/stored-b", digest, data)


def test_concurrent_duplicate_waits_for_the_first_and_writes_nothing(
    fresh_registry: Server,
) -> None:
    """Two pushes of one blob to two repositories at once, the first held mid-body: the
    second waits for it, hashes its own bytes without writing them, and links its copy."""
    root, server = fresh_registry.root, fresh_registry
    data, digest = _blob()
    first_at, second_at = open_session(server, "dup/race-a"), open_session(server, "dup/race-b")
    before = bytes_written(server)
    first = HeldPut(connect(server), first_at, digest, data, HEAD)
    _writer_in_flight(root, "dup/race-a", first_at)
    second = HeldPut(connect(server), second_at, digest, data, len(data))
    first.release()
    assert first.answer()[0] == 201
    assert second.answer()[0] == 201
    written = bytes_written(server) - before
    assert written < SIZE + MiB, f"{written} bytes written for one {SIZE}-byte blob"
    one, two = blob_file(root, "dup/race-a", digest), blob_file(root, "dup/race-b", digest)
    assert inode(one) == inode(two)
    assert _uploads_left(root, "dup/race-a") == _uploads_left(root, "dup/race-b") == []
    _serves(server, "dup/race-a", digest, data)
    _serves(server, "dup/race-b", digest, data)


def test_duplicate_with_wrong_bytes_is_refused(fresh_registry: Server) -> None:
    """A duplicate whose bytes do not hash to the digest gets DIGEST_INVALID, as any
    upload does, and its repository gains nothing (no blob, no pin left behind)."""
    root, server = fresh_registry.root, fresh_registry
    data, digest = _blob()
    first_at, bad_at = open_session(server, "dup/bad-a"), open_session(server, "dup/bad-b")
    first = HeldPut(connect(server), first_at, digest, data, HEAD)
    _writer_in_flight(root, "dup/bad-a", first_at)
    forged = HeldPut(connect(server), bad_at, digest, os.urandom(len(data)), len(data))
    first.release()
    assert first.answer()[0] == 201
    status, body = forged.answer()
    assert status == 400 and json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID"
    assert not blob_file(root, "dup/bad-b", digest).exists()
    assert _uploads_left(root, "dup/bad-b") == []
    assert os.stat(blob_file(root, "dup/bad-a", digest)).st_nlink == 1
    # And against a stored copy (no upload in flight): refused the same way.
    with client_of(server) as c:
        location = c.post("/v2/dup/bad-c/blobs/uploads/").headers["Location"]
        resp = c.put(location, params={"digest": digest}, content=os.urandom(len(data)))
    assert resp.status_code == 400 and resp.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not blob_file(root, "dup/bad-c", digest).exists()
    assert _uploads_left(root, "dup/bad-c") == []


def test_duplicate_differing_late_from_the_stored_copy_is_refused(
    fresh_registry: Server,
) -> None:
    """A duplicate is compared with the stored copy: bytes equal to it up to their last
    byte, or one byte longer or shorter, are still DIGEST_INVALID, and a correct push after
    them still links the copy."""
    root = fresh_registry.root
    data, digest = _blob()
    with client_of(fresh_registry) as c:
        push_blob(c, "dup/late-a", data)
        last_byte = data[:-1] + bytes([data[-1] ^ 1])
        for forged in (last_byte, data + b"x", data[:-1]):
            location = c.post("/v2/dup/late-b/blobs/uploads/").headers["Location"]
            resp = c.put(location, params={"digest": digest}, content=forged)
            assert resp.status_code == 400, (len(forged), resp.text)
            assert resp.json()["errors"][0]["code"] == "DIGEST_INVALID"
            assert not blob_file(root, "dup/late-b", digest).exists()
        assert _uploads_left(root, "dup/late-b") == []
        push_blob(c, "dup/late-b", data)
    assert inode(blob_file(root, "dup/late-b", digest)) == inode(
        blob_file(root, "dup/late-a", digest)
    )
    _serves(fresh_registry, "dup/late-b", digest, data)


def test_duplicate_of_an_unverified_copy_is_hashed(fresh_registry: Server) -> None:
    """A stored copy whose verified stamp no longer matches (its mtime moved: it may have
    been rewritten) is never compared with: the duplicate is hashed, still not written,
    and wrong bytes are refused."""
    root = fresh_registry.root
    data, digest = _blob()
    with client_of(fresh_registry) as c:
        push_blob(c, "dup/unverified-a", data)
        os.utime(blob_file(root, "dup/unverified-a", digest), (1, 1))
        location = c.post("/v2/dup/unverified-b/blobs/uploads/").headers["Location"]
        resp = c.put(location, params={"digest": digest}, content=os.urandom(len(data)))
        assert resp.status_code == 400 and resp.json()["errors"][0]["code"] == "DIGEST_INVALID"
        before = bytes_written(fresh_registry)
        push_blob(c, "dup/unverified-b", data)
        written = bytes_written(fresh_registry) - before
    assert written < MiB, f"the duplicate's {SIZE} bytes were written ({written} bytes)"
    _serves(fresh_registry, "dup/unverified-b", digest, data)


def test_duplicate_stores_the_blob_when_the_first_upload_fails(fresh_registry: Server) -> None:
    """The first upload's client goes away mid-body: the duplicate waiting for it takes
    over and stores its own bytes, so it succeeds."""
    root, server = fresh_registry.root, fresh_registry
    data, digest = _blob()
    first_at, second_at = open_session(server, "dup/fail-a"), open_session(server, "dup/fail-b")
    first = HeldPut(connect(server), first_at, digest, data, HEAD)
    _writer_in_flight(root, "dup/fail-a", first_at)
    second = HeldPut(connect(server), second_at, digest, data, len(data))
    first.cut()
    assert second.answer()[0] == 201
    assert not blob_file(root, "dup/fail-a", digest).exists()
    _serves(server, "dup/fail-b", digest, data)


def test_duplicate_stops_waiting_for_a_first_upload_that_stalls(fresh_registry: Server) -> None:
    """The first upload's client stops sending mid-body and stays connected: its
    duplicate does not wait for it for long, but stores its own bytes and succeeds while
    the first is still held (``duplicate_uploads.STALL``)."""
    root, server = fresh_registry.root, fresh_registry
    data, digest = _blob()
    first_at, second_at = open_session(server, "dup/stall-a"), open_session(server, "dup/stall-b")
    first = HeldPut(connect(server), first_at, digest, data, HEAD)
    _writer_in_flight(root, "dup/stall-a", first_at)
    second = HeldPut(connect(server), second_at, digest, data, len(data))
    assert second.answer()[0] == 201  # the first is still held here
    _serves(server, "dup/stall-b", digest, data)
    first.release()
    assert first.answer()[0] == 201
    assert inode(blob_file(root, "dup/stall-a", digest)) == inode(
        blob_file(root, "dup/stall-b", digest)
    )


def test_duplicate_does_not_wait_for_a_first_upload_far_too_slow_to_finish(
    fresh_registry: Server,
) -> None:
    """The first upload's client keeps sending, but slowly (a slow link: the rest of its
    body would take about 13 s at its pace), so it never stalls. The duplicate stops
    waiting once that pace is seen (``duplicate_uploads.AHEAD``), stores its own bytes and
    succeeds while the first is still arriving: a fast pusher is not held to the pace of
    another pushing the same layer."""
    root, server = fresh_registry.root, fresh_registry
    data, digest = _blob()
    first_at, second_at = open_session(server, "dup/slow-a"), open_session(server, "dup/slow-b")
    first = HeldPut(connect(server), first_at, digest, data, HEAD)
    _writer_in_flight(root, "dup/slow-a", first_at)
    first.release(piece=32 * 1024, every=0.1)  # 320 KiB/s for the last 4 MiB
    second = HeldPut(connect(server), second_at, digest, data, len(data))
    assert second.answer()[0] == 201
    assert first.sending, "the duplicate waited for the slow first upload to finish"
    _serves(server, "dup/slow-b", digest, data)
    first.cut()


def test_with_dedupe_off_every_upload_stores_its_own_copy(tmp_path: Path) -> None:
    """``storage.dedupe: false``: a duplicate is written and kept as a copy of its own."""
    data, digest = _blob()
    root = tmp_path / "data"
    with serving(root, dedupe=False) as server, client_of(server) as c:
        push_blob(c, "dup/off-a", data)
        before = bytes_written(server)
        push_blob(c, "dup/off-b", data)
        assert bytes_written(server) - before >= SIZE
    one, two = blob_file(root, "dup/off-a", digest), blob_file(root, "dup/off-b", digest)
    assert inode(one) != inode(two) and two.read_bytes() == data


def test_gc_keeps_the_pin_of_a_duplicate_in_flight(tmp_path: Path) -> None:
    """While a duplicate is hashed, its pin holds the stored copy: GC deletes the copy's
    only other name (an orphan blob) and sweeps the upload folder (a stray pin, its
    session gone, is removed), yet the pin in use stays and the duplicate succeeds."""
    data, digest = _blob()
    root = tmp_path / "data"
    with serving(root, gcDelay="3s", gcInterval="1s") as server:
        with client_of(server) as c:
            push_blob(c, "dup/gc-a", data)  # no manifest names it: GC's to delete
        at = open_session(server, "dup/gc-b")
        held = HeldPut(connect(server), at, digest, data, HEAD)
        session = session_file(root, "dup/gc-b", at)
        pin = session.with_name(f".{session.name}.pin")
        wait_until(pin.exists, 30, "the duplicate to pin the stored copy")
        stray = session.with_name(f".{'0' * 32}.pin")
        stray.write_bytes(b"left by a crash")
        os.utime(stray, (1, 1))
        wait_until(lambda: not stray.exists(), 30, "GC to sweep the upload folder")
        wait_until(
            lambda: not blob_file(root, "dup/gc-a", digest).exists(), 30, "the orphan deleted"
        )
        assert pin.exists() and file_size(session) == 0
        held.release()
        assert held.answer()[0] == 201
        _serves(server, "dup/gc-b", digest, data)


def _on_workers(server: Server) -> tuple[int, int]:
    first, second = worker_pids(server)[:2]
    return first, second


def test_duplicate_on_another_worker_waits_and_writes_nothing(tmp_path: Path) -> None:
    """The first upload on one worker process, its duplicate on the other: the claim holds
    across processes, so the duplicate's bytes are hashed, not written."""
    server = start_workers(tmp_path / "data", 2)
    root = server.root
    try:
        data, digest = _blob()
        one_pid, other_pid = _on_workers(server)
        first_at = open_session(server, "dup/workers-a")
        second_at = open_session(server, "dup/workers-b")
        one, other = connection_to(server, one_pid), connection_to(server, other_pid)
        assert one.sock is not None and other.sock is not None
        before = bytes_written(server)
        first = HeldPut(one.sock, first_at, digest, data, HEAD)
        _writer_in_flight(root, "dup/workers-a", first_at)
        second = HeldPut(other.sock, second_at, digest, data, len(data))
        first.release()
        assert first.answer()[0] == 201
        assert second.answer()[0] == 201
        written = bytes_written(server) - before
        assert written < SIZE + MiB, f"{written} bytes written for one {SIZE}-byte blob"
        a, b = blob_file(root, "dup/workers-a", digest), blob_file(root, "dup/workers-b", digest)
        assert inode(a) == inode(b)
        _serves(server, "dup/workers-b", digest, data)
    finally:
        server.stop()


def test_duplicate_survives_the_first_uploads_worker_killed(tmp_path: Path) -> None:
    """The worker storing the first upload is killed with -9 mid-body: its claim goes with
    it, and the duplicate waiting on the other worker stores the blob itself."""
    server = start_workers(tmp_path / "data", 2)
    root = server.root
    try:
        data, digest = _blob()
        one_pid, other_pid = _on_workers(server)
        first_at = open_session(server, "dup/kill-a")
        second_at = open_session(server, "dup/kill-b")
        one, other = connection_to(server, one_pid), connection_to(server, other_pid)
        assert one.sock is not None and other.sock is not None
        first = HeldPut(one.sock, first_at, digest, data, HEAD)
        _writer_in_flight(root, "dup/kill-a", first_at)
        second = HeldPut(other.sock, second_at, digest, data, len(data))
        os.kill(one_pid, signal.SIGKILL)
        assert second.answer()[0] == 201
        first.cut()
        with httpx.Client(base_url=server.url, timeout=30) as c:
            got = c.get(f"/v2/dup/kill-b/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
    finally:
        server.stop()
