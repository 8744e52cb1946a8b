"""SIGTERM: stop accepting, let in-flight requests finish within ``http.shutdownTimeout``,
exit. Upload sessions survive the restart: the client resumes its PATCHes.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
from conftest import Server, start_server
from ops_helpers import json_lines, ops_config, signal_server, wait_for
from spec_helpers import sha256_digest, start_upload, with_params
from storage_helpers import client_of

CHUNK = 64 * 1024


def _slow_patch(url: str, chunks: int, pause: float, result: dict[str, object]) -> threading.Thread:
    """PATCH ``chunks`` random chunks, ``pause`` seconds apart, in a thread (chunked body)."""
    sent = bytearray()
    result["sent"] = sent

    def body() -> Iterator[bytes]:
        for _ in range(chunks):
            data = os.urandom(CHUNK)
            sent.extend(data)
            yield data
            time.sleep(pause)

    def run() -> None:
        try:
            with httpx.Client(timeout=60) as c:
                result["status"] = c.patch(url, content=body()).status_code
        except httpx.HTTPError as exc:
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _connect_refused(server: Server) -> bool:
    try:
        httpx.get(f"{server.url}/v2/", timeout=0.5)
    except httpx.ConnectError:
        return True
    except httpx.HTTPError:
        return False
    return False


def test_sigterm_drains_in_flight_upload_then_exits(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = ops_config(tmp_path / "config.json", root, http={"shutdownTimeout": "20s"})
    server = start_server(root, config=config)
    repo = f"drain/{uuid.uuid4().hex[:8]}"
    result: dict[str, object] = {}
    with client_of(server) as c:
        url = start_upload(c, repo)
    thread = _slow_patch(url, chunks=20, pause=0.1, result=result)
    time.sleep(0.5)  # the PATCH is streaming
    assert server.proc is not None
    signal_server(server, signal.SIGTERM)
    # New connections are refused at once, while the PATCH goes on.
    wait_for(lambda: _connect_refused(server), 2, "the listener to close")
    assert thread.is_alive(), "the in-flight PATCH ended before the listener closed"
    thread.join(30)
    assert result.get("status") == 202, result
    assert server.proc.wait(10) == 0
    lines = json_lines(server.output())
    assert any("stopping" in d["message"] for d in lines)
    assert any(d["message"] == "dockyard stopped" for d in lines)

    # The whole chunk was kept: after a restart the session holds it and can be finished.
    server.start()
    with client_of(server) as c:
        status = c.get(url)
        sent = bytes(result["sent"])  # type: ignore[arg-type]
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{len(sent) - 1}"
        done = c.put(with_params(url, {"digest": sha256_digest(sent)}))
        assert done.status_code == 201, done.text
    server.stop()


def test_grace_period_cuts_a_hung_request_and_rolls_it_back(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = ops_config(tmp_path / "config.json", root, http={"shutdownTimeout": "1s"})
    server = start_server(root, config=config)
    repo = f"grace/{uuid.uuid4().hex[:8]}"
    first = os.urandom(CHUNK)
    with client_of(server) as c:
        url = start_upload(c, repo)
        resp = c.patch(url, content=first, headers={"Content-Range": f"0-{CHUNK - 1}"})
        assert resp.status_code == 202
    result: dict[str, object] = {}
    thread = _slow_patch(url, chunks=600, pause=0.05, result=result)  # 30 s: never finishes
    time.sleep(0.5)
    started = time.monotonic()
    signal_server(server, signal.SIGTERM)
    assert server.proc is not None and server.proc.wait(15) == 0
    assert time.monotonic() - started < 6, "the grace period was not enforced"
    thread.join(60)
    assert result.get("status") != 202
    server.start()
    with client_of(server) as c:
        status = c.get(url)
        assert status.status_code == 204
        assert status.headers["Range"] == f"0-{CHUNK - 1}"  # the cut PATCH left nothing
    server.stop()


def test_upload_resumes_after_restart(tmp_path: Path) -> None:
    """POST, PATCH the first half, restart the server, GET the offset, PATCH the rest, PUT."""
    server = start_server(tmp_path / "data")
    repo = f"resume/{uuid.uuid4().hex[:8]}"
    data = os.urandom(3 * 1024 * 1024 + 17)
    half = len(data) // 2
    digest = sha256_digest(data)
    try:
        with client_of(server) as c:
            url = start_upload(c, repo)
            first = c.patch(
                url,
                content=data[:half],
                headers={
                    "Content-Range": f"0-{half - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert first.status_code == 202
        server.stop()
        server.start()
        with client_of(server) as c:
            status = c.get(url)
            assert status.status_code == 204
            assert status.headers["Range"] == f"0-{half - 1}"
            offset = int(status.headers["Range"].split("-")[1]) + 1
            rest = c.patch(
                url,
                content=data[offset:],
                headers={
                    "Content-Range": f"{offset}-{len(data) - 1}",
                    "Content-Type": "application/octet-stream",
                },
            )
            assert rest.status_code == 202, rest.text
            done = c.put(with_params(url, {"digest": digest}))
            assert done.status_code == 201, done.text
            blob = c.get(f"/v2/{repo}/blobs/{digest}")
            assert blob.status_code == 200 and sha256_digest(blob.content) == digest
    finally:
        server.stop()
