"""``log.level`` and ``log.output``: JSON lines, one access line per request with its id.

The request id goes back in ``X-Request-Id``: the client's own when it is sane, else one
the server makes up.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from auth_helpers import client_for, write_htpasswd
from conftest import start_server
from ops_helpers import access_lines, json_lines, ops_config, wait_for
from spec_helpers import get_manifest, push_image
from storage_helpers import client_of


def test_access_lines_are_json_with_request_id_and_fields(tmp_path: Path) -> None:
    root, log_file = tmp_path / "data", tmp_path / "dockyard.log"
    config = ops_config(tmp_path / "config.json", root, log={"output": str(log_file)})
    server = start_server(root, config=config)
    repo = f"logs/{uuid.uuid4().hex[:8]}"
    try:
        with client_of(server) as c:
            pushed = push_image(c, repo, "v1")
            got = c.get(
                f"/v2/{repo}/manifests/v1",
                headers={"X-Request-Id": "client-req-42", "Accept": pushed.media_type},
            )
            assert got.status_code == 200
            assert got.headers["X-Request-Id"] == "client-req-42"
            bad = c.get("/v2/", headers={"X-Request-Id": "evil\tid with spaces " + "x" * 200})
            missing = get_manifest(c, repo, "nope")
        server_id = bad.headers["X-Request-Id"]
        assert re.fullmatch(r"[0-9a-f]{32}", server_id), server_id
        assert missing.status_code == 404 and missing.headers.get("X-Request-Id")

        def logged() -> list[dict[str, object]] | None:
            lines = access_lines(log_file.read_text()) if log_file.exists() else []
            ids = {line.get("request_id") for line in lines}
            wanted = {"client-req-42", server_id, missing.headers["X-Request-Id"]}
            return lines if wanted <= ids else None

        lines = wait_for(logged, 10, "access lines for the three requests")
    finally:
        server.stop()
    everything = json_lines(log_file.read_text())  # every line of the file is JSON
    assert any(d.get("logger") == "dockyard" for d in everything), "start-up line missing"
    line = next(d for d in lines if d["request_id"] == "client-req-42")
    assert line["method"] == "GET"
    assert line["path"] == f"/v2/{repo}/manifests/v1"
    assert line["status"] == 200
    assert line["bytes_out"] == len(pushed.body)
    assert line["bytes_in"] == 0
    assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    assert "user" in line and line["user"] is None
    assert line["level"] == "info" and line["time"].endswith("Z")
    put = next(d for d in lines if d["method"] == "PUT" and "/manifests/" in d["path"])
    assert put["status"] == 201 and put["bytes_in"] == len(pushed.body)
    miss = next(d for d in lines if d["request_id"] == missing.headers["X-Request-Id"])
    assert miss["status"] == 404


def test_log_level_warn_silences_access_lines(tmp_path: Path) -> None:
    root, log_file = tmp_path / "data", tmp_path / "dockyard.log"
    config = ops_config(
        tmp_path / "config.json", root, log={"level": "warn", "output": str(log_file)}
    )
    server = start_server(root, config=config)
    try:
        with client_of(server) as c:
            for _ in range(3):
                assert c.get("/v2/").status_code == 200
            assert c.get("/v2/no/such/thing").status_code == 404
    finally:
        server.stop()
    text = log_file.read_text() if log_file.exists() else ""
    assert access_lines(text) == []
    assert all(d["level"] in ("warning", "error", "critical") for d in json_lines(text))


def test_access_line_names_the_authenticated_user(tmp_path: Path) -> None:
    root, log_file = tmp_path / "data", tmp_path / "dockyard.log"
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland"})
    config = ops_config(
        tmp_path / "config.json",
        root,
        log={"output": str(log_file)},
        http={"auth": {"htpasswd": {"path": str(htpasswd)}}},
    )
    server = start_server(root, config=config)
    try:
        with client_for(server, "alice", "wonderland") as c:
            ok = c.get("/v2/", headers={"X-Request-Id": "as-alice"})
            assert ok.status_code == 200
        with client_for(server) as anonymous:
            denied = anonymous.get("/v2/", headers={"X-Request-Id": "as-nobody"})
            assert denied.status_code == 401
            assert denied.headers["X-Request-Id"] == "as-nobody"

        def by_id() -> dict[str, dict[str, object]] | None:
            lines = access_lines(log_file.read_text()) if log_file.exists() else []
            found = {str(d["request_id"]): d for d in lines}
            return found if {"as-alice", "as-nobody"} <= set(found) else None

        found = wait_for(by_id, 10, "access lines of both requests")
    finally:
        server.stop()
    assert found["as-alice"]["user"] == "alice"
    assert found["as-nobody"]["user"] is None and found["as-nobody"]["status"] == 401
