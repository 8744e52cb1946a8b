"""``log.audit``: one JSON line per mutating request; no secret in any log, ever."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from auth_helpers import client_for, serving, write_config, write_htpasswd
from spec_helpers import assert_error, image_manifest, push_manifest

PASSWORD = "correct-horse-battery-staple"


def test_audit_lines_and_no_secrets_anywhere(tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": PASSWORD})
    audit, main_log = tmp_path / "audit.log", tmp_path / "dockyard.log"
    config = write_config(
        tmp_path / "config.json",
        {
            "auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True},
            "accessControl": {
                "repositories": {
                    "**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]}
                },
            },
        },
        log={"level": "debug", "output": str(main_log), "audit": str(audit)},
    )
    with serving(tmp_path / "data", config) as server:
        with client_for(server, "alice", "wrong-" + PASSWORD) as bad:
            assert_error(bad.post("/v2/app/blobs/uploads/"), 401, "UNAUTHORIZED")
        with client_for(server, "alice", PASSWORD) as alice:
            pushed = push_manifest(alice, "app", image_manifest(alice, "app"), "v1")
            assert_error(alice.delete(f"/v2/app/manifests/{pushed.digest}"), 403, "DENIED")
            assert alice.get("/v2/app/tags/list").status_code == 200  # a read: not audited
            key = alice.post("/zot/auth/apikey", json={"label": "ci"}).json()["apiKey"]
        with client_for(server, "alice", key) as by_key:
            assert by_key.post("/v2/app/blobs/uploads/").status_code == 202
        with client_for(server) as anon:
            # A bare secret with no scheme: refused, and never echoed into a log.
            r = anon.post("/v2/app/blobs/uploads/", headers={"Authorization": PASSWORD})
            assert_error(r, 401, "UNAUTHORIZED")
            assert_error(anon.put("/v2/app/manifests/x", content=b"{}"), 401, "UNAUTHORIZED")
        output = server.output()

    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    assert all(line["method"] in ("POST", "PUT", "PATCH", "DELETE") for line in lines)
    first = lines[0]
    assert first["user"] == "alice" and first["auth"] == "none"
    assert first["result"] == "unauthorized" and first["status"] == 401
    assert first["path"] == "/v2/app/blobs/uploads/" and first["repository"] == "app"
    assert first["client"] == "127.0.0.1" and "time" in first
    put = next(
        line
        for line in lines
        if line["method"] == "PUT"
        and line["status"] == 201
        and line["path"] == "/v2/app/manifests/v1"
    )
    assert put["user"] == "alice" and put["auth"] == "htpasswd" and put["result"] == "ok"
    denied = next(line for line in lines if line["method"] == "DELETE")
    assert denied["result"] == "denied" and denied["status"] == 403
    created = next(line for line in lines if line["path"] == "/zot/auth/apikey")
    assert created["status"] == 201 and created["user"] == "alice"
    assert any(line["auth"] == "apikey" and line["status"] == 202 for line in lines)
    assert lines[-1]["user"] is None and lines[-1]["result"] == "unauthorized"

    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    key_basic = base64.b64encode(f"alice:{key}".encode()).decode()
    for name, text in {
        "audit log": audit.read_text(),
        "server log": main_log.read_text(),
        "server output": output,
    }.items():
        for secret in (PASSWORD, key, key[4:], basic, key_basic):
            assert secret not in text, f"a secret leaked into the {name}"
    assert "/v2/app/blobs/uploads/" in main_log.read_text(), "the debug log saw no request"
