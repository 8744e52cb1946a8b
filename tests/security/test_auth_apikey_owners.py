"""API keys live only as long as their user: a key of a user deleted from htpasswd is
refused at once and purged later, admins list and revoke anyone's keys, and expired
keys are deleted (issue 15, item 2)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from auth_helpers import client_for, serving, write_config, write_htpasswd
from conftest import Server
from spec_helpers import assert_error

KEYS = "/zot/auth/apikey"
USERS = {"admin": "admin-pw", "eve": "eve-pw", "bob": "bob-pw"}


def _config(tmp_path: Path, **auth: object) -> tuple[Path, Path]:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True, **auth},
            "accessControl": {
                "repositories": {"**": {"defaultPolicy": ["read", "create"]}},
                "adminPolicy": {"users": ["admin"], "actions": ["read", "create", "update"]},
            },
        },
    )
    return htpasswd, config


def _key(server: Server, user: str, **body: object) -> dict[str, object]:
    with client_for(server, user, USERS[user]) as c:
        r = c.post(KEYS, json={"label": "ci", **body})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _delete_user(htpasswd: Path, user: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "passwd", str(htpasswd), user, "--delete"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_a_deleted_users_keys_stop_working_at_once(tmp_path: Path) -> None:
    htpasswd, config = _config(tmp_path)
    with serving(tmp_path / "data", config) as server:
        eve_key = str(_key(server, "eve")["apiKey"])
        bob_key = str(_key(server, "bob")["apiKey"])
        with client_for(server, "eve", eve_key) as eve:
            assert eve.get("/v2/").status_code == 200
            assert eve.post("/v2/eve/app/blobs/uploads/").status_code == 202
        _delete_user(htpasswd, "eve")
        with client_for(server, "eve", "eve-pw") as eve:
            assert_error(eve.get("/v2/"), 401, "UNAUTHORIZED")
        with client_for(server, "eve", eve_key) as eve:
            assert_error(eve.get("/v2/"), 401, "UNAUTHORIZED")
            assert_error(eve.post("/v2/eve/app/blobs/uploads/"), 401, "UNAUTHORIZED")
        # Others' keys are not touched.
        with client_for(server, "bob", bob_key) as bob:
            assert bob.get("/v2/").status_code == 200


def test_admins_list_and_revoke_anyones_keys(tmp_path: Path) -> None:
    _, config = _config(tmp_path)
    with serving(tmp_path / "data", config) as server:
        eve = _key(server, "eve")
        with client_for(server, "admin", "admin-pw") as admin:
            listed = admin.get(KEYS, params={"user": "eve"})
            assert listed.status_code == 200, listed.text
            assert [k["uuid"] for k in listed.json()["apiKeys"]] == [eve["uuid"]]
            assert "apiKey" not in listed.json()["apiKeys"][0]
            assert admin.get(KEYS).json()["apiKeys"] == []  # without ?user=: the admin's own
            gone = admin.delete(KEYS, params={"user": "eve", "id": str(eve["uuid"])})
            assert gone.status_code == 200, gone.text
            assert admin.get(KEYS, params={"user": "eve"}).json()["apiKeys"] == []
            missing = admin.delete(KEYS, params={"user": "eve", "id": str(eve["uuid"])})
            assert_error(missing, 404, "NOT_FOUND")
            # Keys are created by their own user only.
            assert_error(admin.post(KEYS, params={"user": "eve"}, json={}), 403, "DENIED")
        with client_for(server, "eve", str(eve["apiKey"])) as by_key:
            assert_error(by_key.get("/v2/"), 401, "UNAUTHORIZED")
        # Not an admin: another user's keys are out of reach, and say so.
        bob = _key(server, "bob")
        with client_for(server, "eve", "eve-pw") as other:
            assert_error(other.get(KEYS, params={"user": "bob"}), 403, "DENIED")
            refused = other.delete(KEYS, params={"user": "bob", "id": str(bob["uuid"])})
            assert_error(refused, 403, "DENIED")
            assert other.get(KEYS, params={"user": "eve"}).status_code == 200  # herself
        with client_for(server, "bob", str(bob["apiKey"])) as by_key:
            assert by_key.get("/v2/").status_code == 200
            # An admin's rights do not pass to a key: keys never manage keys.


def test_expired_and_orphaned_keys_are_purged(tmp_path: Path) -> None:
    """Expired keys are refused at once and deleted by a periodic pass; so are the keys
    of a user missing from htpasswd on two passes in a row."""
    htpasswd, config = _config(tmp_path, apikeyPurgeInterval="1s")
    server_root = tmp_path / "data"
    with serving(server_root, config) as server:
        # Taken once the server is up: a slow start must not expire the key before it is made.
        soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        short = _key(server, "bob", expirationDate=soon)
        kept = _key(server, "bob")
        eve = _key(server, "eve")
        time.sleep(2.5)
        with client_for(server, "bob", str(short["apiKey"])) as c:
            assert_error(c.get("/v2/"), 401, "UNAUTHORIZED")
        _delete_user(htpasswd, "eve")
        db = server_root / "_dockyard" / "apikeys.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with sqlite3.connect(db) as conn:
                ids = {row[0] for row in conn.execute("SELECT id FROM api_keys")}
            if ids == {kept["uuid"]}:
                break
            time.sleep(0.25)
        assert ids == {kept["uuid"]}, (ids, short["uuid"], eve["uuid"])
        assert "purged" in server.output()
    assert str(eve["uuid"]) not in str(ids)


def test_a_key_made_with_a_client_certificate_ends_with_it(tmp_path: Path) -> None:
    """mTLS has no list of users to check a key's owner against: the key expires no
    later than the certificate it was made with, and works while mTLS is on."""
    from certs import server_pki

    pki = server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    tls = {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(pki.ca.cert_path)}
    config = write_config(
        tmp_path / "config.json",
        {"tls": tls, "auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True}},
    )
    with serving(tmp_path / "data", config, tls=pki.ca.client_context()) as server:
        carol = pki.ca.client_context(tmp_path / "carol", "carol")
        later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        with client_for(server, verify=carol) as by_cert:
            unbounded = by_cert.post(KEYS, json={"label": "ci"})
            bounded = by_cert.post(KEYS, json={"label": "ci", "expirationDate": later})
        assert unbounded.status_code == bounded.status_code == 201, unbounded.text
        for created in (unbounded.json(), bounded.json()):
            ends = datetime.fromisoformat(created["expirationDate"].replace("Z", "+00:00"))
            left = ends - datetime.now(UTC)
            # The test CA issues client certificates for one day.
            assert timedelta(hours=23) < left <= timedelta(days=1), created["expirationDate"]
        with client_for(server, "carol", unbounded.json()["apiKey"]) as by_key:
            assert by_key.get("/v2/").status_code == 200
