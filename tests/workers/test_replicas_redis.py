"""Replicas sharing one root through Redis (zot's ``cacheDriver``): real ``dockyard serve``
processes, each its own port and ``--workers 1``, and Debian's redis-server.

What one replica acknowledges, every other serves on the next request; concurrent pushes
through different replicas all land; a replica killed while it holds a repository lock
wedges nothing past the lock's expiry; a FLUSHALL loses nothing; a Redis outage is a 503
with Retry-After and nothing half-published, and the replicas recover on their own.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from clients_helpers import Skopeo, assert_same_image
from conftest import Server, start_server
from images import build_image
from redis_helpers import OwnRedis, RedisServer, own_redis, redis_server  # noqa: F401
from replicas_helpers import LOCK_EXPIRY, replica_config, start_replicas
from spec_helpers import (
    get_manifest,
    image_manifest,
    list_tags,
    location_url,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
    sha256_digest,
    with_params,
)


@pytest.fixture
def replicas(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> Iterator[tuple[list[Server], str]]:
    servers, keyprefix = start_replicas(tmp_path, redis_server.url, count=3)
    yield servers, keyprefix
    for server in servers:
        server.stop()


def _clients(servers: list[Server]) -> list[httpx.Client]:
    return [httpx.Client(base_url=s.url, timeout=30) for s in servers]


def test_a_tag_pushed_through_one_replica_is_served_by_the_others_at_once(
    replicas: tuple[list[Server], str],
) -> None:
    servers, _ = replicas
    a, b, c = _clients(servers)
    repo = f"rw/{uuid.uuid4().hex[:8]}"
    first = push_image(a, repo, "live")
    for _ in range(15):
        # b's cache of the tag is warm (checked milliseconds ago), so only the shared
        # change counter can tell it that a moved the tag.
        seen = get_manifest(b, repo, "live")
        assert seen.status_code == 200
        moved = push_manifest(a, repo, image_manifest(a, repo), "live")
        now = get_manifest(b, repo, "live")
        assert now.status_code == 200
        assert now.headers["Docker-Content-Digest"] == moved.digest
        assert now.content == moved.body
    # A delete through c is seen by a and b on their next request.
    assert get_manifest(a, repo, "live").status_code == 200
    deleted = c.delete(f"/v2/{repo}/manifests/{moved.digest}")
    assert deleted.status_code == 202
    assert get_manifest(a, repo, "live").status_code == 404
    assert get_manifest(b, repo, moved.digest).status_code == 404
    assert get_manifest(b, repo, first.digest).status_code == 200  # untouched


def test_concurrent_pushes_of_different_tags_through_every_replica_all_land(
    replicas: tuple[list[Server], str],
) -> None:
    servers, _ = replicas
    clients = _clients(servers)
    repo = f"many/{uuid.uuid4().hex[:8]}"
    per_thread, threads_per_replica = 4, 4
    failures: list[str] = []
    expected: dict[str, str] = {}
    lock = threading.Lock()

    def pusher(client: httpx.Client, name: str) -> None:
        try:
            for i in range(per_thread):
                tag = f"{name}-{i}"
                pushed = push_image(client, repo, tag)
                with lock:
                    expected[tag] = pushed.digest
        except Exception as exc:  # reported below, with every other failure
            failures.append(f"{name}: {exc}")

    threads = [
        threading.Thread(target=pusher, args=(client, f"r{n}t{t}"))
        for n, client in enumerate(clients)
        for t in range(threads_per_replica)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []
    assert len(expected) == len(servers) * threads_per_replica * per_thread
    for client in clients:
        assert sorted(list_tags(client, repo)) == sorted(expected)
        for tag, digest in expected.items():
            resp = get_manifest(client, repo, tag, method="HEAD")
            assert resp.headers["Docker-Content-Digest"] == digest


def test_a_replica_killed_holding_a_repository_lock_wedges_it_no_longer_than_the_expiry(
    replicas: tuple[list[Server], str],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    servers, keyprefix = replicas
    victim, survivor = servers[0], servers[1]
    raw = redis_server.client()
    repo = f"kill/{uuid.uuid4().hex[:8]}"
    lock_key = f"{keyprefix}:root:lock:{repo}"
    a = httpx.Client(base_url=victim.url, timeout=30)
    pushed = [image_manifest(a, repo) for _ in range(4)]  # blobs up front: PUTs are short
    stop = threading.Event()

    def hammer(n: int) -> None:
        client = httpx.Client(base_url=victim.url, timeout=30)
        i = 0
        while not stop.is_set():
            try:
                push_manifest(client, repo, pushed[n], f"t{n}-{i}")
            except (httpx.HTTPError, AssertionError):
                return  # the replica died under it
            i += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    caught = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if raw.exists(lock_key):
                assert victim.proc is not None
                victim.proc.send_signal(signal.SIGKILL)
                victim.proc.wait(10)
                caught = raw.pttl(lock_key) > 0  # still there: its holder is dead
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert caught, "the victim was never seen holding the repository lock"
    victim.proc = None
    # The survivor pushes to the same repository: the dead holder's lock is respected
    # until it expires (its holder may only be paused), and not a moment longer.
    b = httpx.Client(base_url=survivor.url, timeout=30)
    pushed_after = image_manifest(b, repo)
    remaining = raw.pttl(lock_key) / 1000
    started = time.monotonic()
    push_manifest(b, repo, pushed_after, "after-the-kill")
    waited = time.monotonic() - started
    assert remaining - 0.5 < waited < LOCK_EXPIRY + 5, (remaining, waited)
    third = httpx.Client(base_url=servers[2].url, timeout=30)
    seen = get_manifest(third, repo, "after-the-kill")
    assert seen.headers["Docker-Content-Digest"] == pushed_after.digest


def test_a_holder_paused_past_its_lock_expiry_cannot_overwrite_the_next_holder(
    replicas: tuple[list[Server], str],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """Replica A is stopped (SIGSTOP) while it holds a repository lock, the lock expires,
    B pushes a tag, A continues. Whatever A was doing, B's tag and every tag acknowledged
    to A's clients are in the index afterwards, and A's refusals are 503s with
    Retry-After. (Where the pause lands is chance; the fence's refusal of a holder whose
    lock expired is shown step by step in tests/storage/test_redis_coordination.py.)"""
    servers, keyprefix = replicas
    paused, other = servers[0], servers[1]
    raw = redis_server.client()
    repo = f"fence/{uuid.uuid4().hex[:8]}"
    lock_key = f"{keyprefix}:root:lock:{repo}"
    a = httpx.Client(base_url=paused.url, timeout=60)
    pushed = [image_manifest(a, repo) for _ in range(4)]
    acknowledged: list[str] = []
    refused: list[int] = []
    stop = threading.Event()

    def hammer(n: int) -> None:
        client = httpx.Client(base_url=paused.url, timeout=60)
        i = 0
        while not stop.is_set():
            tag = f"t{n}-{i}"
            resp = client.put(
                f"/v2/{repo}/manifests/{tag}",
                content=pushed[n].body,
                headers={"Content-Type": pushed[n].media_type},
            )
            if resp.status_code == 201:
                acknowledged.append(tag)
            else:
                assert resp.status_code == 503, resp.text
                assert resp.headers["Retry-After"]
                refused.append(resp.status_code)
            i += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    assert paused.proc is not None
    caught = False
    deadline = time.monotonic() + 60
    try:
        while not caught and time.monotonic() < deadline:
            token = raw.get(lock_key)
            if token is None:
                continue
            paused.proc.send_signal(signal.SIGSTOP)
            if raw.get(lock_key) == token:
                caught = True  # stopped while holding it
                break
            paused.proc.send_signal(signal.SIGCONT)  # released meanwhile: try again
        assert caught, "replica A was never stopped while holding the repository lock"
        lapse = time.monotonic() + LOCK_EXPIRY + 5
        while raw.exists(lock_key):
            assert time.monotonic() < lapse, "the paused holder's lock did not expire"
            time.sleep(0.05)
        b = httpx.Client(base_url=other.url, timeout=30)
        from_b = push_image(b, repo, "from-b")
    finally:
        paused.proc.send_signal(signal.SIGCONT)
        time.sleep(1)  # A's requests in flight finish (published or refused)
        stop.set()
        for thread in threads:
            thread.join(60)
    for server in servers:
        client = httpx.Client(base_url=server.url, timeout=30)
        tags = set(list_tags(client, repo))
        assert "from-b" in tags
        assert set(acknowledged) <= tags
        assert get_manifest(client, repo, "from-b").content == from_b.body


def test_a_flushall_loses_nothing_and_the_shared_map_is_rebuilt(
    replicas: tuple[list[Server], str],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    servers, keyprefix = replicas
    clients = _clients(servers)
    shared_layer = random_blob(4096)
    images: dict[tuple[str, str], tuple[str, bytes]] = {}
    for n, client in enumerate(clients):
        for k in range(2):
            repo = f"flush/r{n}-{k}"
            push_blob(client, repo, shared_layer)  # one layer in every repository: deduped
            pushed = push_image(client, repo, "v1")
            images[(repo, "v1")] = (pushed.digest, pushed.body)
    raw = redis_server.client()
    assert raw.keys(f"{keyprefix}:root:paths:*")  # the dedupe map lives in Redis
    raw.flushall()
    layer_digest = sha256_digest(shared_layer)
    for client in clients:
        for (repo, tag), (digest, body) in images.items():
            got = get_manifest(client, repo, tag)
            assert got.status_code == 200, got.text
            assert got.content == body and got.headers["Docker-Content-Digest"] == digest
            blob = client.get(f"/v2/{repo}/blobs/{layer_digest}")
            assert blob.status_code == 200 and blob.content == shared_layer
    # The lease holder sees the map lost its "adopted" mark and rebuilds it from the files.
    deadline = time.monotonic() + 30
    while not raw.smembers(f"{keyprefix}:root:paths:{layer_digest}"):
        assert time.monotonic() < deadline, "the dedupe map was not rebuilt"
        time.sleep(0.2)
    assert len(raw.smembers(f"{keyprefix}:root:paths:{layer_digest}")) == len(images)
    # And a new repository gets the layer by a mount from the rebuilt map.
    mounted = clients[1].post(f"/v2/flush/new/blobs/uploads/?mount={layer_digest}")
    assert mounted.status_code == 201, mounted.text


def test_a_redis_outage_is_a_503_with_retry_after_and_the_replicas_recover(
    tmp_path: Path,
    own_redis: OwnRedis,  # noqa: F811
) -> None:
    servers, _ = start_replicas(tmp_path, own_redis.url, count=2)
    try:
        a, b = _clients(servers)
        repo = f"outage/{uuid.uuid4().hex[:8]}"
        before = push_image(a, repo, "before")
        waiting = image_manifest(a, repo)  # its blobs are in; the manifest comes later
        own_redis.stop()
        for client in (a, b):
            got = get_manifest(client, repo, "before")
            assert got.status_code == 503
            assert got.headers["Retry-After"].isdigit()
            assert [e["code"] for e in got.json()["errors"]] == ["UNAVAILABLE"]
            put = client.put(
                f"/v2/{repo}/manifests/during",
                content=waiting.body,
                headers={"Content-Type": waiting.media_type},
            )
            assert put.status_code == 503 and put.json()["errors"][0]["code"] == "UNAVAILABLE"
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "cache" in ready.json()
            assert client.get("/v2/").status_code == 200  # the version check needs no Redis
        own_redis.start()  # empty, as after a FLUSHALL: nothing in it is needed back
        deadline = time.monotonic() + 30
        while any(c.get("/readyz").status_code != 200 for c in (a, b)):
            assert time.monotonic() < deadline, "a replica did not recover"
            time.sleep(0.2)
        for client in (a, b):
            assert get_manifest(client, repo, "before").content == before.body
            assert get_manifest(client, repo, "during").status_code == 404  # nothing half-done
        after = push_manifest(b, repo, waiting, "during")
        assert get_manifest(a, repo, "during").headers["Docker-Content-Digest"] == after.digest
    finally:
        for server in servers:
            server.stop()


def test_skopeo_pushes_through_one_replica_and_pulls_the_same_image_through_each(
    tmp_path: Path,
    replicas: tuple[list[Server], str],
) -> None:
    servers, _ = replicas
    image = build_image(tmp_path / "src", "v1", layers=3)
    skopeo = Skopeo(tmp_path / "home")
    skopeo.push(image.layout, "v1", f"{servers[0].host}/skopeo/app:v1")
    for n, server in enumerate(servers):
        out = tmp_path / f"out{n}"
        skopeo.pull(f"{server.host}/skopeo/app:v1", out, "v1")
        assert_same_image(out, "v1", image)


def test_a_chunked_upload_whose_requests_land_on_different_replicas(
    replicas: tuple[list[Server], str],
) -> None:
    servers, _ = replicas
    clients = _clients(servers)
    repo = f"chunks/{uuid.uuid4().hex[:8]}"
    data = random_blob(3 * 1024 * 1024)
    pieces = [data[i : i + 1024 * 1024] for i in range(0, len(data), 1024 * 1024)]
    started = clients[0].post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202
    url, offset = location_url(started), 0
    for n, piece in enumerate(pieces):
        client = clients[(n + 1) % len(clients)]  # every PATCH to the next replica
        end = offset + len(piece) - 1
        resp = client.patch(
            url,
            content=piece,
            headers={
                "Content-Range": f"{offset}-{end}",
                "Content-Type": "application/octet-stream",
            },
        )
        assert resp.status_code == 202, resp.text
        assert resp.headers["Range"] == f"0-{end}"
        url, offset = location_url(resp), end + 1
    digest = sha256_digest(data)
    done = clients[1].put(with_params(url, {"digest": digest}))
    assert done.status_code == 201, done.text
    for client in clients:
        got = client.get(f"/v2/{repo}/blobs/{digest}")
        assert got.status_code == 200 and got.content == data


def test_a_subpaths_root_with_its_own_cache_driver_is_shared_too(
    tmp_path: Path,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    keyprefix = f"dy{uuid.uuid4().hex[:8]}"
    config = replica_config(tmp_path, tmp_path / "main", redis_server.url, keyprefix)
    doc = json.loads(config.read_text())
    driver = dict(doc["storage"]["cacheDriver"])
    doc["storage"]["subPaths"] = {
        "/team": {"rootDirectory": str(tmp_path / "team"), "cacheDriver": driver}
    }
    config.write_text(json.dumps(doc))
    servers = [start_server(tmp_path / "main", config=config) for _ in range(2)]
    try:
        a, b = _clients(servers)
        for repo in ("team/app", "other/app"):
            get_manifest(b, repo, "live")  # b has looked (and cached what it saw)
            pushed = push_image(a, repo, "live")
            assert get_manifest(b, repo, "live").content == pushed.body
            moved = push_manifest(a, repo, image_manifest(a, repo), "live")
            assert get_manifest(b, repo, "live").content == moved.body
        assert (tmp_path / "team" / "team" / "app" / "index.json").exists()
        raw = redis_server.client()
        assert raw.get(f"{keyprefix}:sub:team:changes") is not None  # the team root's own
        assert raw.get(f"{keyprefix}:root:changes") is not None
    finally:
        for server in servers:
            server.stop()


def test_the_background_lease_moves_to_another_replica_when_its_holder_is_killed(
    replicas: tuple[list[Server], str],
    redis_server: RedisServer,  # noqa: F811
) -> None:
    servers, keyprefix = replicas
    raw = redis_server.client()
    line = "runs the background jobs"

    def holders() -> list[Server]:
        return [s for s in servers if s.proc is not None and line in s.output()]

    deadline = time.monotonic() + 15
    while not holders():
        assert time.monotonic() < deadline, "no replica took the background lease"
        time.sleep(0.1)
    time.sleep(1)
    assert len(holders()) == 1  # one replica, not one each
    holder = holders()[0]
    assert holder.proc is not None
    token = raw.get(f"{keyprefix}:leader")
    assert token is not None and token.decode().startswith(f"{holder.proc.pid}:")
    holder.proc.send_signal(signal.SIGKILL)
    holder.proc.wait(10)
    holder.proc = None
    deadline = time.monotonic() + LOCK_EXPIRY + 10
    while not holders():
        assert time.monotonic() < deadline, "nobody took the lease over"
        time.sleep(0.1)
    assert len(holders()) == 1
    assert raw.get(f"{keyprefix}:leader") not in (None, token)
