"""API keys (``http.auth.apikey``): created and revoked over zot's endpoints, used as
basic-auth passwords, shown once, stored only hashed, and kept across restarts (which
zot's were not, zot #2591)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from auth_helpers import client_for, serving, write_config, write_htpasswd
from conftest import Server, start_server
from spec_helpers import assert_error, get_manifest, image_manifest, push_manifest

KEYS = "/zot/auth/apikey"


def _config(tmp_path: Path) -> Path:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "alice-pw", "bob": "bob-pw"})
    return write_config(
        tmp_path / "config.json",
        {
            "auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True},
            "accessControl": {
                "repositories": {
                    "alice/**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]},
                    "bob/**": {"policies": [{"users": ["bob"], "actions": ["read", "create"]}]},
                }
            },
        },
    )


def _create(server: Server, body: dict[str, object], who: str = "alice") -> dict[str, object]:
    with client_for(server, who, f"{who}-pw", headers={"User-Agent": "tests/1.0"}) as c:
        r = c.post(KEYS, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_key_lifecycle_and_durability(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = start_server(root, config=_config(tmp_path))
    try:
        created = _create(server, {"label": "ci"})
        key = str(created["apiKey"])
        assert key.startswith("zak_") and len(key) >= 36
        assert created["label"] == "ci" and created["creatorUa"] == "tests/1.0"
        assert created["expirationDate"] == "0001-01-01T00:00:00Z"

        # The key is a password: push and pull with it.
        with client_for(server, "alice", key) as c:
            assert c.get("/v2/").status_code == 200
            push_manifest(c, "alice/app", image_manifest(c, "alice/app"), "v1")
            assert get_manifest(c, "alice/app", "v1").status_code == 200
            # It carries alice's rights, no more.
            assert_error(c.post("/v2/bob/app/blobs/uploads/"), 403, "DENIED")
            # A key cannot manage keys: a leaked one cannot mint more or hide itself.
            assert_error(c.post(KEYS, json={"label": "more"}), 403, "DENIED")
            assert_error(c.get(KEYS), 403, "DENIED")
        # It is alice's only: with bob's name it is no password at all.
        with client_for(server, "bob", key) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")

        # Listed without the key itself; lastUsed set.
        with client_for(server, "alice", "alice-pw") as c:
            listed = c.get(KEYS).json()["apiKeys"]
        assert [k["uuid"] for k in listed] == [created["uuid"]]
        assert "apiKey" not in listed[0] and key not in str(listed)
        assert listed[0]["lastUsed"] != "0001-01-01T00:00:00Z"
        with client_for(server, "bob", "bob-pw") as c:
            assert c.get(KEYS).json()["apiKeys"] == []
            # bob cannot revoke alice's key, nor learn that it exists.
            assert c.delete(KEYS, params={"id": str(created["uuid"])}).status_code == 404

        # Stored hashed: the database never holds the key.
        db = root / "_dockyard" / "apikeys.db"
        raw = b"".join(p.read_bytes() for p in db.parent.glob("apikeys.db*"))
        assert key.encode() not in raw and key[4:].encode() not in raw

        # Restart: the key still works (zot #2591).
        server.stop()
        server.start()
        with client_for(server, "alice", key) as c:
            assert c.get("/v2/alice/app/tags/list").json()["tags"] == ["v1"]

        # Revoke; it stops working at once, and stays revoked after a restart.
        with client_for(server, "alice", "alice-pw") as c:
            assert c.delete(KEYS, params={"id": str(created["uuid"])}).status_code == 200
            assert c.get(KEYS).json()["apiKeys"] == []
        with client_for(server, "alice", key) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        server.stop()
        server.start()
        with client_for(server, "alice", key) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT COUNT(*) FROM api_keys").fetchone()[0] == 0
    finally:
        server.stop()


def test_scopes_and_expiry(tmp_path: Path) -> None:
    with serving(tmp_path / "data", _config(tmp_path)) as server:
        scoped = str(_create(server, {"label": "one repo", "scopes": ["alice/one"]})["apiKey"])
        with client_for(server, "alice", scoped) as c:
            assert c.post("/v2/alice/one/blobs/uploads/").status_code == 202
            assert_error(c.post("/v2/alice/two/blobs/uploads/"), 403, "DENIED")
            # The catalog shows only what the key may read.
            with client_for(server, "alice", "alice-pw") as full:
                push_manifest(full, "alice/two", image_manifest(full, "alice/two"), "v1")
                push_manifest(full, "alice/one", image_manifest(full, "alice/one"), "v1")
                assert full.get("/v2/_catalog").json()["repositories"] == ["alice/one", "alice/two"]
            assert c.get("/v2/_catalog").json()["repositories"] == ["alice/one"]

        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        expiring = _create(server, {"label": "short", "expirationDate": soon})
        assert expiring["isExpired"] is False
        with client_for(server, "alice", str(expiring["apiKey"])) as c:
            assert c.get("/v2/").status_code == 200
            import time

            time.sleep(2.2)
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        # zot's RFC 1123Z form is accepted too; a date in the past is not.
        later = (datetime.now(UTC) + timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        assert _create(server, {"label": "rfc1123", "expirationDate": later})["isExpired"] is False
        with client_for(server, "alice", "alice-pw") as c:
            past = c.post(KEYS, json={"expirationDate": "2001-01-01T00:00:00Z"})
            assert_error(past, 400, "BAD_REQUEST")
            assert_error(c.post(KEYS, content=b"{not json"), 400, "BAD_REQUEST")
            assert_error(c.delete(KEYS), 400, "BAD_REQUEST")
        assert_error(httpx.post(f"{server.url}{KEYS}", json={}), 401, "UNAUTHORIZED")


def test_made_up_keys_are_refused(tmp_path: Path) -> None:
    with serving(tmp_path / "data", _config(tmp_path)) as server:
        real = str(_create(server, {"label": "real"})["apiKey"])
        for wrong in ("zak_" + "0" * 40, "zak_", "zak_short", "not-a-key", real[:-1], real + "0"):
            with client_for(server, "alice", wrong) as c:
                assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
