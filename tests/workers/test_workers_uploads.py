"""Upload sessions across worker processes: any worker takes any request of a session,
and a worker killed mid-chunk loses nothing the client was told was stored."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from ops_helpers import wait_for
from spec_helpers import location_url, sha256_digest
from workers_helpers import fresh, start_workers, worker_pids, workers_of


def _offset(server_url: str, location: str) -> int:
    with httpx.Client(base_url=server_url, timeout=30) as c:
        resp = c.get(location)
    assert resp.status_code == 204, resp.text
    return int(resp.headers["Range"].split("-")[1]) + 1


def test_chunked_upload_with_every_request_on_a_fresh_connection(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 2)
    repo = "uploads/fresh"
    try:
        data = os.urandom(16 * 300_000 + 123)
        chunks = [data[i : i + 300_000] for i in range(0, len(data), 300_000)]
        resp, rid = fresh(server, "POST", f"/v2/{repo}/blobs/uploads/")
        assert resp.status_code == 202
        location, ids, offset = location_url(resp), [rid], 0
        for chunk in chunks:
            end = offset + len(chunk) - 1
            resp, rid = fresh(
                server,
                "PATCH",
                location,
                content=chunk,
                headers={
                    "Content-Range": f"{offset}-{end}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert resp.status_code == 202, resp.text
            assert resp.headers["Range"] == f"0-{end}"
            ids.append(rid)
            offset = end + 1
            # Whichever worker answers the status, it reports the file's size.
            assert _offset(server.url, location) == offset
        digest = sha256_digest(data)
        resp, rid = fresh(server, "PUT", location, params={"digest": digest})
        assert resp.status_code == 201, resp.text
        ids.append(rid)
        assert workers_of(server, ids) == {0, 1}, "every request went to one worker"
        for _ in range(4):
            got, _ = fresh(server, "GET", f"/v2/{repo}/blobs/{digest}")
            assert got.status_code == 200 and got.content == data
        # A wrong digest is still refused, whichever worker hashes.
        resp, _ = fresh(server, "POST", f"/v2/{repo}/blobs/uploads/")
        location = location_url(resp)
        assert fresh(server, "PATCH", location, content=b"abc")[0].status_code == 202
        assert fresh(server, "PATCH", location, content=b"def")[0].status_code == 202
        wrong = sha256_digest(b"abcdeX")
        assert fresh(server, "PUT", location, params={"digest": wrong})[0].status_code == 400
    finally:
        server.stop()


def _lock_holder(path: Path) -> int | None:
    """The pid holding an flock on ``path`` (from /proc/locks), if any."""
    ino = path.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].split(":")[-1] == str(ino):
            return int(parts[4])
    return None


def test_kill_9_of_the_worker_streaming_a_chunk(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_workers(root, 2)
    repo = "uploads/killed"
    try:
        data = os.urandom(3_000_000)
        resp, _ = fresh(server, "POST", f"/v2/{repo}/blobs/uploads/")
        location = location_url(resp)
        session = root / repo / ".uploads" / location.rstrip("/").split("/")[-1]
        first = 1_000_000
        assert fresh(server, "PATCH", location, content=data[:first])[0].status_code == 202

        released = threading.Event()

        def slow() -> Iterator[bytes]:
            yield data[first : first + 500_000]  # written (past the batch size), not acked
            released.wait(30)
            yield data[first + 500_000 :]

        failed: list[BaseException] = []

        def patch() -> None:
            try:
                with httpx.Client(base_url=server.url, timeout=30) as c:
                    c.patch(location, content=slow())
            except httpx.HTTPError as exc:
                failed.append(exc)

        thread = threading.Thread(target=patch)
        thread.start()
        holder = wait_for(lambda: _lock_holder(session), 10, "a worker to lock the session")
        assert holder in worker_pids(server)
        time.sleep(0.3)  # let it write what it has
        os.kill(holder, signal.SIGKILL)
        released.set()
        thread.join(30)
        assert failed, "the request of a killed worker cannot have succeeded"

        # The client resumes where the server says the upload stands, on other workers.
        offset = _offset(server.url, location)
        assert first <= offset <= first + 500_000
        resp, _ = fresh(
            server,
            "PATCH",
            location,
            content=data[offset:],
            headers={"Content-Range": f"{offset}-{len(data) - 1}"},
        )
        assert resp.status_code == 202, resp.text
        digest = sha256_digest(data)
        assert fresh(server, "PUT", location, params={"digest": digest})[0].status_code == 201
        got, _ = fresh(server, "GET", f"/v2/{repo}/blobs/{digest}")
        assert got.status_code == 200 and got.content == data
        wait_for(
            lambda: len(worker_pids(server)) == 2 and holder not in worker_pids(server),
            20,
            "the supervisor to start a new worker",
        )
    finally:
        server.stop()
