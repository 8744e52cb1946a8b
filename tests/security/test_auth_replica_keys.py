"""Who may do what with API keys and sessions when replicas keep them in the bucket and
Redis (``auth/apikey_bucket.py``, ``auth/redis_sessions.py``): the same cells as on one
machine, asked of each replica directly, since any may take any request. A key never
manages keys; a user revokes only their own keys, an admin anyone's; a session cookie
without its CSRF token writes nothing; a cookie made up or of another registry opens
nothing.
"""

from __future__ import annotations

import httpx
from redis_helpers import RedisServer, redis_server  # noqa: F401
from scaleout_helpers import PASSWORDS, Cluster, cluster_fixture, start_auth_cluster
from spec_helpers import assert_error

KEYS = "/zot/auth/apikey"


cluster = cluster_fixture(start_auth_cluster)


def _clients(cluster: Cluster, user: str, secret: str) -> list[httpx.Client]:
    """A client of each replica by itself, logged in as ``user`` with ``secret``."""
    return [httpx.Client(base_url=r.url, timeout=30, auth=(user, secret)) for r in cluster.replicas]


def _key(cluster: Cluster, user: str) -> dict[str, object]:
    front = httpx.Client(base_url=cluster.front.url, timeout=30, auth=(user, PASSWORDS[user]))
    made = front.post(KEYS, json={"label": f"{user}'s"})
    assert made.status_code == 201, made.text
    body: dict[str, object] = made.json()
    return body


def test_key_management_cells_hold_on_every_replica(cluster: Cluster) -> None:
    alice, bob = _key(cluster, "alice"), _key(cluster, "bob")
    for by_key in _clients(cluster, "alice", str(alice["apiKey"])):
        assert by_key.get("/v2/").status_code == 200
        # A key cannot manage keys: a leaked one cannot mint more or hide itself.
        assert_error(by_key.post(KEYS, json={"label": "more"}), 403, "DENIED")
        assert_error(by_key.get(KEYS), 403, "DENIED")
        assert_error(by_key.delete(KEYS, params={"id": str(alice["uuid"])}), 403, "DENIED")
        # Another user's key is not alice's, whatever name is sent with it.
        assert_error(by_key.get("/v2/", auth=("alice", str(bob["apiKey"]))), 401, "UNAUTHORIZED")
    for other in _clients(cluster, "bob", PASSWORDS["bob"]):
        # Not an admin: alice's keys are out of reach, and say so.
        assert_error(other.get(KEYS, params={"user": "alice"}), 403, "DENIED")
        refused = other.delete(KEYS, params={"user": "alice", "id": str(alice["uuid"])})
        assert_error(refused, 403, "DENIED")
        # Without ?user= the id is looked up among bob's own keys only.
        assert_error(other.delete(KEYS, params={"id": str(alice["uuid"])}), 404, "NOT_FOUND")
        assert [k["uuid"] for k in other.get(KEYS).json()["apiKeys"]] == [bob["uuid"]]
    assert all(
        c.get("/v2/").status_code == 200 for c in _clients(cluster, "alice", str(alice["apiKey"]))
    )
    # An admin lists and revokes anyone's keys, through any replica.
    admin = _clients(cluster, "admin", PASSWORDS["admin"])
    listed = admin[0].get(KEYS, params={"user": "alice"})
    assert [k["uuid"] for k in listed.json()["apiKeys"]] == [alice["uuid"]]
    assert str(alice["apiKey"]) not in listed.text
    gone = admin[1].delete(KEYS, params={"user": "alice", "id": str(alice["uuid"])})
    assert gone.status_code == 200, gone.text
    for by_key in _clients(cluster, "alice", str(alice["apiKey"])):
        assert_error(by_key.get("/v2/"), 401, "UNAUTHORIZED")
    # Keys are created by their own user only.
    assert_error(admin[2].post(KEYS, params={"user": "bob"}, json={}), 403, "DENIED")


def test_session_cells_hold_on_every_replica(cluster: Cluster) -> None:
    front = httpx.Client(base_url=cluster.front.url, timeout=30)
    login = front.post("/ui/session", json={"username": "bob", "password": PASSWORDS["bob"]})
    assert login.status_code == 200, login.text
    cookie = login.headers["set-cookie"].split(";")[0]
    csrf = login.json()["csrf"]
    assert "Secure" in login.headers["set-cookie"] and "HttpOnly" in login.headers["set-cookie"]
    wrong = front.post("/ui/session", json={"username": "bob", "password": "nope"})
    assert_error(wrong, 401, "UNAUTHORIZED")
    for replica in cluster.replicas:
        client = httpx.Client(base_url=replica.url, timeout=30)
        # A write with the cookie needs the token: a push cannot ride on the session.
        no_token = client.post("/v2/bob/app/blobs/uploads/", headers={"Cookie": cookie})
        assert_error(no_token, 403, "DENIED")
        with_token = client.post(
            "/v2/bob/app/blobs/uploads/", headers={"Cookie": cookie, "X-Dockyard-CSRF": csrf}
        )
        assert with_token.status_code == 202, with_token.text
        # A session gives bob's rights, no more: managing keys needs a password login.
        assert_error(
            client.get(KEYS, params={"user": "alice"}, headers={"Cookie": cookie}),
            403,
            "DENIED",
        )
        # A cookie no replica made opens nothing.
        made_up = client.get("/ui/session", headers={"Cookie": "dockyard_session=made-up"})
        assert made_up.json()["user"] is None
        assert_error(
            client.get("/v2/_catalog", headers={"Cookie": "dockyard_session=x"}),
            401,
            "UNAUTHORIZED",
        )
        # A logout elsewhere needs the token too.
        assert_error(client.delete("/ui/session", headers={"Cookie": cookie}), 403, "DENIED")
        assert client.get("/ui/session", headers={"Cookie": cookie}).json()["user"] == "bob"
