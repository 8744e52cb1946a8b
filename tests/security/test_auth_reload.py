"""A config reload changes who may do what, and the rate limits, on a running server.

The server is not restarted and the test's connections stay open across the reload.
"""

from __future__ import annotations

import json
import signal
import uuid
from pathlib import Path
from typing import Any

from auth_helpers import client_for, serving, write_htpasswd
from ops_helpers import signal_server, wait_for, write_json_atomically
from spec_helpers import push_blob


def _doc(htpasswd: Path, log: Path, policies: list[dict[str, Any]], rate: int) -> dict[str, Any]:
    return {
        "http": {
            "auth": {"htpasswd": {"path": str(htpasswd)}},
            "accessControl": {"repositories": {"**": {"policies": policies, "defaultPolicy": []}}},
            "ratelimit": {"rate": rate},
        },
        "log": {"level": "info", "output": str(log)},
    }


def test_sighup_changes_access_control_and_rate_limit(tmp_path: Path) -> None:
    """After SIGHUP, a user refused with 403 may push, and a tighter rate limit answers 429."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "pw-alice"})
    log, path = tmp_path / "server.log", tmp_path / "config.json"
    read_only = [{"users": ["alice"], "actions": ["read"]}]
    doc = _doc(htpasswd, log, read_only, rate=1000)
    write_json_atomically(path, doc)
    repo = f"reload/{uuid.uuid4().hex[:8]}"
    with serving(tmp_path / "data", path) as server, client_for(server, "alice", "pw-alice") as c:
        refused = c.post(f"/v2/{repo}/blobs/uploads/")
        assert refused.status_code == 403, refused.text
        assert refused.json()["errors"][0]["code"] == "DENIED"

        doc = _doc(htpasswd, log, [{"users": ["alice"], "actions": ["read", "create"]}], rate=2)
        write_json_atomically(path, doc)
        signal_server(server, signal.SIGHUP)
        wait_for(
            lambda: "http.auth and http.accessControl reloaded" in log.read_text(),
            10,
            "the auth reload to be logged",
        )

        digest = push_blob(c, repo, b"allowed after the reload")
        statuses = [c.head(f"/v2/{repo}/blobs/{digest}").status_code for _ in range(10)]
        assert 429 in statuses, f"a rate of 2/s let 10 quick requests through: {statuses}"
        limited = c.head(f"/v2/{repo}/blobs/{digest}")
        if limited.status_code == 429:
            assert int(limited.headers["Retry-After"]) >= 1
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any("reloaded" in line.get("message", "") for line in lines)
