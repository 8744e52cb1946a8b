"""Upload sessions belong to the user who opened them, whatever the credential, across
restarts; GC removes a session's owner record with it. (The two-user cells are in the
access matrix.)"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import httpx
from auth_helpers import client_for, serving, write_config, write_htpasswd
from certs import server_pki
from conftest import start_server
from spec_helpers import assert_error, sha256_digest
from storage_helpers import wait_until

USERS = {"alice": "alice-pw", "bob": "bob-pw"}
ACCESS = {
    "repositories": {
        "team/**": {"defaultPolicy": ["read", "create"]},
        "open/**": {"defaultPolicy": ["read", "create"], "anonymousPolicy": ["read", "create"]},
    }
}


def _assert_not_theirs(client: httpx.Client, session: str) -> None:
    assert_error(client.get(session), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(client.patch(session, content=b"x"), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(
        client.put(session, params={"digest": sha256_digest(b"x")}), 404, "BLOB_UPLOAD_UNKNOWN"
    )
    assert_error(client.delete(session), 404, "BLOB_UPLOAD_UNKNOWN")


def test_the_owner_is_the_user_by_password_key_or_certificate_and_survives_restarts(
    tmp_path: Path,
) -> None:
    """alice opens a session with her password; after a restart her API key and her client
    certificate (CN alice) carry on with it, and bob gets 404 whichever way he logs in."""
    pki = server_pki(tmp_path / "pki")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {
            "tls": {"cert": str(pki.cert), "key": str(pki.key), "cacert": str(pki.ca.cert_path)},
            "auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True},
            "accessControl": ACCESS,
        },
    )
    server = start_server(tmp_path / "data", config=config, tls=pki.ca.client_context())
    try:
        with client_for(server, "alice", "alice-pw") as alice:
            r = alice.post("/zot/auth/apikey", json={"label": "ci"})
            assert r.status_code == 201, r.text
            key = r.json()["apiKey"]
            session = alice.post("/v2/team/app/blobs/uploads/").headers["Location"]
            assert alice.patch(session, content=b"abc").status_code == 202
        server.stop()
        server.start()
        alice_cert = pki.ca.client_context(tmp_path / "alice-cert", "alice")
        bob_cert = pki.ca.client_context(tmp_path / "bob-cert", "bob")
        with client_for(server, "bob", "bob-pw") as bob, client_for(server, verify=bob_cert) as b:
            _assert_not_theirs(bob, session)
            _assert_not_theirs(b, session)
        with client_for(server, "alice", key) as by_key:
            r = by_key.get(session)
            assert r.status_code == 204 and r.headers["Range"] == "0-2", r.text
            assert by_key.patch(session, content=b"def").status_code == 202
        with client_for(server, verify=alice_cert) as by_cert:
            digest = sha256_digest(b"abcdefghi")
            r = by_cert.put(session, params={"digest": digest}, content=b"ghi")
            assert r.status_code == 201, r.text
            assert by_cert.get(f"/v2/team/app/blobs/{digest}").content == b"abcdefghi"
    finally:
        server.stop()


def test_anonymous_sessions_are_for_anonymous_callers(tmp_path: Path) -> None:
    """With auth on, a session opened without credentials cannot be told apart from other
    anonymous ones: any anonymous caller may use it, and no logged-in user may."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS},
    )
    with serving(tmp_path / "data", config) as server:
        with client_for(server) as anon, client_for(server, "alice", "alice-pw") as alice:
            session = anon.post("/v2/open/app/blobs/uploads/").headers["Location"]
            _assert_not_theirs(alice, session)
            mine = alice.post("/v2/open/app/blobs/uploads/").headers["Location"]
            _assert_not_theirs(anon, mine)
        with client_for(server) as other_anon:
            assert other_anon.patch(session, content=b"abc").status_code == 202
            r = other_anon.put(session, params={"digest": sha256_digest(b"abc")})
            assert r.status_code == 201, r.text


def test_gc_removes_an_idle_session_with_its_owner_record(tmp_path: Path) -> None:
    """The owner is kept next to the session file; an idle session goes whole."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS},
        storage={"rootDirectory": str(tmp_path / "data"), "gcDelay": "2s", "gcInterval": "1s"},
    )
    root = tmp_path / "data"
    with serving(root, config) as server, client_for(server, "alice", "alice-pw") as alice:
        session = alice.post("/v2/team/app/blobs/uploads/").headers["Location"]
        assert alice.patch(session, content=b"abc").status_code == 202
        uploads = root / "team/app/.uploads"
        assert len(list(uploads.iterdir())) == 2, list(uploads.iterdir())  # session + owner
        # An owner record left alone (a crash between the two unlinks) goes too.
        stray = uploads / f".{uuid.uuid4().hex}.owner"
        stray.write_text('{"user": "bob"}')
        os.utime(stray, (time.time() - 3600, time.time() - 3600))
        wait_until(lambda: alice.get(session).status_code == 404, 10, "idle session removed")
        # The session file goes first, its owner record just after (and the stray in the
        # same pass or the next): the folder empties, it need not be empty at the 404.
        wait_until(lambda: list(uploads.iterdir()) == [], 10, "owner records removed")


def test_gc_keeps_the_owner_record_of_a_session_in_use(tmp_path: Path) -> None:
    """A session opened longer ago than gcDelay but fed since keeps its owner record:
    after a restart it is still alice's (and so still nobody else's)."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", USERS)
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}, "accessControl": ACCESS},
        storage={"rootDirectory": str(tmp_path / "data"), "gcDelay": "2s", "gcInterval": "1s"},
    )
    server = start_server(tmp_path / "data", config=config)
    try:
        with client_for(server, "alice", "alice-pw") as alice:
            session = alice.post("/v2/team/app/blobs/uploads/").headers["Location"]
            fed = b""
            deadline = time.monotonic() + 4  # two gcDelays, four periodic passes
            while time.monotonic() < deadline:
                assert alice.patch(session, content=b"x").status_code == 202
                fed += b"x"
                time.sleep(0.5)
        server.stop()
        server.start()
        with client_for(server, "bob", "bob-pw") as bob:
            assert_error(bob.get(session), 404, "BLOB_UPLOAD_UNKNOWN")
        with client_for(server, "alice", "alice-pw") as alice:
            r = alice.put(session, params={"digest": sha256_digest(fed)})
            assert r.status_code == 201, r.text
    finally:
        server.stop()
