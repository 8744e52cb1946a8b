"""Browser sessions and API keys on replicas that share only a bucket and a Redis (issue
12, "stateless replicas"): three replicas with folders of their own behind a round-robin
proxy, so every request may reach another replica. A login through one is a session on
all; an API key made through one works on all, through skopeo too, until it is revoked,
and then every replica refuses it on its next request; a FLUSHALL keeps the keys (they
are in the bucket) and ends the sessions (documented: log in again).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from auth_helpers import write_htpasswd
from clients_helpers import Skopeo, assert_same_image
from images import build_image
from redis_helpers import OwnRedis, RedisServer, own_redis, redis_server  # noqa: F401
from round_robin_proxy import RoundRobinProxy
from s3_helpers import S3Server
from scaleout_helpers import PASSWORDS, Cluster, cluster_fixture, start_auth_cluster
from search_helpers import SEARCH
from spec_helpers import get_manifest, push_image

KEYS = "/zot/auth/apikey"
#: A query every logged-in user may make: how many images are readable.
COUNT = '{ ImageList(repo:"") { Page { TotalCount } } }'


cluster = cluster_fixture(start_auth_cluster)


def _front(cluster: Cluster, auth: tuple[str, str] | None = None) -> httpx.Client:
    return httpx.Client(base_url=cluster.front.url, timeout=60, auth=auth)


def _alone(cluster: Cluster, auth: tuple[str, str] | None = None) -> list[httpx.Client]:
    """A client of each replica by itself, past the proxy."""
    return [httpx.Client(base_url=r.url, timeout=30, auth=auth) for r in cluster.replicas]


def _login(client: httpx.Client, user: str = "alice") -> tuple[str, str]:
    """Log in to the web UI: the cookie (as a header: it is ``Secure``, this is HTTP) and
    the CSRF token."""
    answer = client.post("/ui/session", json={"username": user, "password": PASSWORDS[user]})
    assert answer.status_code == 200, answer.text
    cookie = answer.headers["set-cookie"].split(";")[0]
    return cookie, answer.json()["csrf"]


def _who(client: httpx.Client, cookie: str) -> str | None:
    answer = client.get("/ui/session", headers={"Cookie": cookie})
    assert answer.status_code == 200, answer.text
    user: str | None = answer.json()["user"]
    return user


def _create_key(cluster: Cluster, label: str) -> dict[str, object]:
    made = _front(cluster, ("alice", PASSWORDS["alice"])).post(KEYS, json={"label": label})
    assert made.status_code == 201, made.text
    body: dict[str, object] = made.json()
    return body


def _stored_keys(cluster: Cluster, s3: S3Server) -> set[str]:
    """The names of the API key objects in the bucket."""
    keys = s3.keys(cluster.bucket)
    return {k.rsplit("/", 1)[1] for k in keys if "/_dockyard/apikeys/" in k}


def _until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not before the deadline"
        time.sleep(0.2)


def _key_answers(cluster: Cluster, key: str) -> list[int]:
    """What each replica, asked directly, answers a request made with ``key``."""
    return [c.get("/v2/").status_code for c in _alone(cluster, ("alice", key))]


def test_a_login_through_the_proxy_is_a_session_on_every_replica(cluster: Cluster) -> None:
    front = _front(cluster)
    cookie, csrf = _login(front)
    # Through the proxy (each request to the next replica) and on each replica alone.
    for _ in cluster.replicas:
        assert _who(front, cookie) == "alice"
    for client in _alone(cluster):
        assert _who(client, cookie) == "alice"
        with_token = client.post(
            SEARCH, json={"query": COUNT}, headers={"Cookie": cookie, "X-Dockyard-CSRF": csrf}
        )
        assert with_token.status_code == 200, with_token.text
        assert "errors" not in with_token.json()
        # A write with the cookie and no token is refused on every replica alike.
        without = client.post(SEARCH, json={"query": COUNT}, headers={"Cookie": cookie})
        assert without.status_code == 403, without.text
        # No session at all: the search API needs a login.
        assert client.post(SEARCH, json={"query": COUNT}).status_code == 401
    assert set(cluster.front.spread()) == {r.port for r in cluster.replicas}
    # Nothing of the session is in any replica's own folder.
    for replica in cluster.replicas:
        assert not list(replica.root.rglob("sessions.db*"))
    # A logout through one replica ends it on all of them.
    out = front.delete("/ui/session", headers={"Cookie": cookie, "X-Dockyard-CSRF": csrf})
    assert out.status_code == 200, out.text
    for client in _alone(cluster):
        assert _who(client, cookie) is None
        assert (
            client.post(SEARCH, json={"query": COUNT}, headers={"Cookie": cookie}).status_code
            == 401
        )


def test_sessions_in_redis_hold_only_hashes_and_expire_when_idle(
    cluster: Cluster,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    cookie, csrf = _login(_front(cluster))
    sid = cookie.split("=", 1)[1]
    raw = redis_server.client()
    names = raw.keys(f"{cluster.keyprefix}:*ui-session:*")
    assert len(names) == 1
    name = names[0]
    assert name.decode().endswith(hashlib.sha256(sid.encode()).hexdigest())
    stored = raw.hgetall(name)
    everything = b" ".join([name, *stored.keys(), *stored.values()])
    assert sid.encode() not in everything
    # Of the htpasswd hash only a digest: no bcrypt hash to crack in Redis.
    assert b"$2" not in everything
    assert stored[b"csrf"].decode() == csrf
    # Redis ends an idle session by itself: its expiry is the idle time (12 hours).
    assert 11.9 * 3600 * 1000 < raw.pttl(name) <= 12 * 3600 * 1000
    # Reading it again within a minute writes nothing (last_seen is not moved).
    seen = stored[b"last_seen"]
    for client in _alone(cluster):
        assert _who(client, cookie) == "alice"
    assert raw.hget(name, "last_seen") == seen
    # The index of live sessions names it by the same hash, and a logout takes it out.
    index = f"{cluster.keyprefix}:root:ui-sessions"
    assert raw.zrange(index, 0, -1) == [name.decode().rsplit(":", 1)[1].encode()]
    out = _front(cluster).delete("/ui/session", headers={"Cookie": cookie, "X-Dockyard-CSRF": csrf})
    assert out.status_code == 200, out.text
    assert raw.zcard(index) == 0 and not raw.exists(name)


def test_sessions_past_the_limit_end_the_least_recently_used(
    cluster: Cluster,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """At most 10,000 sessions, as in SQLite: logins in a loop cannot fill Redis."""
    raw = redis_server.client()
    index = f"{cluster.keyprefix}:root:ui-sessions"
    prefix = f"{cluster.keyprefix}:root:ui-session:"
    now = time.time()
    # 9,999 sessions of other browsers (hash and index entry, as a login leaves them),
    # one of them idle for longer than 12 hours, and the least recent one still live.
    pipe = raw.pipeline()
    for n in range(9_999):
        member = f"{n:064x}"
        pipe.hset(prefix + member, mapping={"user": "bob", "last_seen": now - 3600 + n / 10})
        pipe.zadd(index, {member: now - 3600 + n / 10})
    pipe.zadd(index, {"idle": now - 13 * 3600})
    pipe.execute()
    oldest = prefix + f"{0:064x}"
    cookie, _ = _login(_front(cluster))  # the idle entry goes: 10,000, the limit
    assert raw.zcard(index) == 10_000 and raw.zscore(index, "idle") is None
    assert raw.exists(oldest)
    second, _ = _login(_front(cluster))  # one more: the least recently used ends
    assert raw.zcard(index) == 10_000
    assert not raw.exists(oldest) and raw.exists(prefix + f"{1:064x}")
    for client in _alone(cluster):
        assert _who(client, cookie) == "alice" and _who(client, second) == "alice"


def test_a_new_password_ends_the_session_on_every_replica(tmp_path: Path, cluster: Cluster) -> None:
    cookie, _ = _login(_front(cluster), "bob")
    for client in _alone(cluster):
        assert _who(client, cookie) == "bob"
    time.sleep(0.01)  # a new modification time for the file's re-read
    write_htpasswd(tmp_path / "htpasswd", {**PASSWORDS, "bob": "new-bob-pw"})
    for client in _alone(cluster):
        assert _who(client, cookie) is None


def test_an_api_key_works_on_every_replica_until_revoked_through_another(
    tmp_path: Path, cluster: Cluster, s3_server: S3Server
) -> None:
    made = _create_key(cluster, "ci")
    key = str(made["apiKey"])
    # skopeo logs in with the key and pushes and pulls through the proxy: its requests
    # are spread over every replica.
    skopeo = Skopeo(tmp_path / "home")
    skopeo.run("login", "--tls-verify=false", "-u", "alice", "-p", key, cluster.front.host)
    image = build_image(tmp_path / "src", "v1", layers=2)
    skopeo.push(image.layout, "v1", f"{cluster.front.host}/keys/app:v1")
    out = tmp_path / "out"
    skopeo.pull(f"{cluster.front.host}/keys/app:v1", out, "v1")
    assert_same_image(out, "v1", image)
    assert set(cluster.front.spread()) == {r.port for r in cluster.replicas}
    assert _key_answers(cluster, key) == [200, 200, 200]
    # A key made now, while every replica's cache is warm, works on every one at once.
    second = str(_create_key(cluster, "second")["apiKey"])
    assert _key_answers(cluster, second) == [200, 200, 200]
    # Every replica lists both keys (what the bucket holds, not what it cached).
    for client in _alone(cluster, ("alice", PASSWORDS["alice"])):
        listed = client.get(KEYS).json()["apiKeys"]
        assert {k["label"] for k in listed} == {"ci", "second"}
        assert key not in json.dumps(listed) and second not in json.dumps(listed)
    # Only hashes are in the bucket, one object per key, never the secret.
    stored = [k for k in s3_server.keys(cluster.bucket) if "/_dockyard/apikeys/" in k]
    names = {k.rsplit("/", 1)[1] for k in stored}
    assert {f"{hashlib.sha256(s.encode()).hexdigest()}.json" for s in (key, second)} <= names
    bucket = s3_server.client()
    for object_key in stored:
        body = bucket.get_object(Bucket=cluster.bucket, Key=object_key)["Body"].read()
        assert key.encode() not in body and second.encode() not in body
    for replica in cluster.replicas:
        assert not list(replica.root.rglob("apikeys.db*"))
    # Revoked through the proxy: every replica refuses it on its next request.
    alice = _front(cluster, ("alice", PASSWORDS["alice"]))
    gone = alice.delete(KEYS, params={"id": str(made["uuid"])})
    assert gone.status_code == 200, gone.text
    assert _key_answers(cluster, key) == [401, 401, 401]
    assert _key_answers(cluster, second) == [200, 200, 200]
    denied = skopeo.run(
        "inspect", "--tls-verify=false", f"docker://{cluster.front.host}/keys/app:v1", check=False
    )
    assert denied.returncode != 0
    # Revoking it again, through any replica, finds nothing.
    assert alice.delete(KEYS, params={"id": str(made["uuid"])}).status_code == 404


def test_a_flushall_keeps_api_keys_and_ends_sessions(
    cluster: Cluster,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    front = _front(cluster)
    key = str(_create_key(cluster, "kept")["apiKey"])
    doomed = _create_key(cluster, "revoked after the flush")
    with_key = _front(cluster, ("alice", key))
    repo = f"flush/{uuid.uuid4().hex[:6]}"
    pushed = push_image(with_key, repo, "v1")
    cookie, _ = _login(front)
    assert _key_answers(cluster, key) == [200, 200, 200]
    assert _key_answers(cluster, str(doomed["apiKey"])) == [200, 200, 200]
    redis_server.client().flushall()
    # The keys are in the bucket: every replica still takes them.
    assert _key_answers(cluster, key) == [200, 200, 200]
    for client in _alone(cluster, ("alice", key)):
        assert get_manifest(client, repo, "v1").content == pushed.body
    # Sessions lived in Redis only: the browser logs in again, and that works everywhere.
    for client in _alone(cluster):
        assert _who(client, cookie) is None
    cookie, _ = _login(front)
    for client in _alone(cluster):
        assert _who(client, cookie) == "alice"
    # A revoke after the flush still reaches every replica's cache.
    alice = _front(cluster, ("alice", PASSWORDS["alice"]))
    assert alice.delete(KEYS, params={"id": str(doomed["uuid"])}).status_code == 200
    assert _key_answers(cluster, str(doomed["apiKey"])) == [401, 401, 401]
    assert _key_answers(cluster, key) == [200, 200, 200]


def test_a_redis_outage_keeps_keys_checked_and_refuses_changes_with_503(
    tmp_path: Path,
    s3_server: S3Server,
    own_redis: OwnRedis,  # noqa: F811
) -> None:
    cluster = start_auth_cluster(s3_server, own_redis.url, tmp_path)
    try:
        front = _front(cluster)
        made = _create_key(cluster, "outage")
        key = str(made["apiKey"])
        cookie, _ = _login(front)
        assert _key_answers(cluster, key) == [200, 200, 200]
        own_redis.stop()
        # A key is still checked, against the bucket itself, on every replica: a login
        # (GET /v2/) works and a made-up key is refused.
        assert _key_answers(cluster, key) == [200, 200, 200]
        assert _key_answers(cluster, "zak_" + "0" * 40) == [401, 401, 401]
        for client in _alone(cluster):
            # A session cannot be looked up: 503 with Retry-After, never a 500.
            answer = client.get("/ui/session", headers={"Cookie": cookie})
            assert answer.status_code == 503, answer.text
            assert answer.headers["Retry-After"].isdigit()
            assert [e["code"] for e in answer.json()["errors"]] == ["UNAVAILABLE"]
        alice = _front(cluster, ("alice", PASSWORDS["alice"]))
        # Listing reads the bucket; a change that could not be announced is not made.
        assert [k["label"] for k in alice.get(KEYS).json()["apiKeys"]] == ["outage"]
        refused = alice.delete(KEYS, params={"id": str(made["uuid"])})
        assert refused.status_code == 503, refused.text
        assert alice.post(KEYS, json={"label": "new"}).status_code == 503
        assert [k["label"] for k in alice.get(KEYS).json()["apiKeys"]] == ["outage"]
        own_redis.start()  # empty: nothing in it was needed
        assert _key_answers(cluster, key) == [200, 200, 200]
        assert alice.delete(KEYS, params={"id": str(made["uuid"])}).status_code == 200
        assert _key_answers(cluster, key) == [401, 401, 401]
        cookie, _ = _login(front)
        for client in _alone(cluster):
            assert _who(client, cookie) == "alice"
    finally:
        cluster.stop()


def test_expired_keys_and_those_of_deleted_users_go_from_the_bucket(
    tmp_path: Path, cluster: Cluster, s3_server: S3Server
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=3)).isoformat()
    made = _front(cluster, ("alice", PASSWORDS["alice"])).post(
        KEYS, json={"label": "short", "expirationDate": soon}
    )
    assert made.status_code == 201, made.text
    short = str(made.json()["apiKey"])
    bobs = _front(cluster, ("bob", PASSWORDS["bob"])).post(KEYS, json={"label": "bob's"})
    assert bobs.status_code == 201, bobs.text
    bob_key = str(bobs.json()["apiKey"])
    hashed = {s: f"{hashlib.sha256(s.encode()).hexdigest()}.json" for s in (short, bob_key)}
    assert set(hashed.values()) <= _stored_keys(cluster, s3_server)
    assert _key_answers(cluster, short) == [200, 200, 200]
    # bob is deleted from htpasswd: every replica refuses his key at once...
    write_htpasswd(tmp_path / "htpasswd", {u: p for u, p in PASSWORDS.items() if u != "bob"})
    answers = [c.get("/v2/").status_code for c in _alone(cluster, ("bob", bob_key))]
    assert answers == [401, 401, 401]
    # ...and the purge (in the lease holder only) deletes it after two passes, and the
    # expired key once it expired.
    _until(lambda: not set(hashed.values()) & _stored_keys(cluster, s3_server))
    assert _key_answers(cluster, short) == [401, 401, 401]


def _burst(cluster: Cluster, key: str, each: int) -> list[int]:
    """Statuses of ``each`` concurrent requests with ``key`` to every replica at once."""

    async def run() -> list[int]:
        auth = httpx.BasicAuth("alice", key)
        async with httpx.AsyncClient(timeout=60, auth=auth) as client:
            urls = [f"{r.url}/v2/" for r in cluster.replicas for _ in range(each)]
            answers = await asyncio.gather(*(client.get(url) for url in urls))
        return [a.status_code for a in answers]

    return asyncio.run(run())


def _quiet(proxy: RoundRobinProxy, still: float = 1.5, timeout: float = 60) -> int:
    """Wait until no request went through ``proxy`` for ``still`` seconds; the count."""
    deadline = time.monotonic() + timeout
    count, since = len(proxy.sent), time.monotonic()
    while time.monotonic() - since < still:
        assert time.monotonic() < deadline, "the bucket never went quiet"
        time.sleep(0.1)
        if len(proxy.sent) != count:
            count, since = len(proxy.sent), time.monotonic()
    return count


def test_a_request_with_a_key_costs_no_s3_call_while_nothing_changed(
    tmp_path: Path,
    s3_server: S3Server,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    # The replicas reach the bucket through a proxy that counts their S3 requests.
    counter = RoundRobinProxy([int(s3_server.endpoint.rsplit(":", 1)[1])])
    try:
        cluster = start_auth_cluster(
            S3Server(counter.url), redis_server.url, tmp_path, purge_interval="1h"
        )
        try:
            key = str(_create_key(cluster, "counted")["apiKey"])
            # The first use on each replica loads the records and records the use.
            assert _key_answers(cluster, key) == [200, 200, 200]
            before = _quiet(counter)
            for _ in range(10):
                assert _key_answers(cluster, key) == [200, 200, 200]
                assert _key_answers(cluster, "zak_" + "1" * 40) == [401, 401, 401]
            assert len(counter.sent) == before
            # A change costs each replica one catch-up (a listing), then nothing again; a
            # burst of requests that all see the version move shares the catch-ups.
            second = str(_create_key(cluster, "second")["apiKey"])
            assert _burst(cluster, second, 24) == [200] * 24 * len(cluster.replicas)
            before = _quiet(counter)
            for _ in range(10):
                assert _key_answers(cluster, key) == [200, 200, 200]
            assert len(counter.sent) == before
        finally:
            cluster.stop()
    finally:
        counter.close()
