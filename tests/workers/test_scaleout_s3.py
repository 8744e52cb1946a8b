"""Three replicas, each with its own local folder, on one moto bucket and one Redis,
behind a round-robin proxy that sends every request to the next replica: they behave as
one registry (issue 12, "replicas on one bucket").
"""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from clients_helpers import Skopeo, assert_same_image
from images import build_image
from redis_helpers import OwnRedis, RedisServer, own_redis, redis_server  # noqa: F401
from s3_helpers import S3Registry, S3Server, dockyard_s3, start_s3_registry
from scaleout_helpers import Cluster, cluster_fixture, start_cluster
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

cluster = cluster_fixture(start_cluster)


def _front(cluster: Cluster, timeout: float = 60) -> httpx.Client:
    return httpx.Client(base_url=cluster.front.url, timeout=timeout)


def test_skopeo_round_trip_through_the_proxy(tmp_path: Path, cluster: Cluster) -> None:
    image = build_image(tmp_path / "src", "v1", layers=3)
    skopeo = Skopeo(tmp_path / "home")
    skopeo.push(image.layout, "v1", f"{cluster.front.host}/scale/app:v1")
    out = tmp_path / "out"
    skopeo.pull(f"{cluster.front.host}/scale/app:v1", out, "v1")
    assert_same_image(out, "v1", image)
    # Every replica took part, and each serves the image alone too.
    assert set(cluster.front.spread()) == {r.port for r in cluster.replicas}
    for n, replica in enumerate(cluster.replicas):
        alone = tmp_path / f"alone{n}"
        skopeo.pull(f"{replica.host}/scale/app:v1", alone, "v1")
        assert_same_image(alone, "v1", image)


def test_a_chunked_upload_whose_patches_land_on_different_replicas(cluster: Cluster) -> None:
    client = _front(cluster)
    repo = f"chunks/{uuid.uuid4().hex[:8]}"
    # Chunks under S3's 5 MiB part size and over it, so segments are rewritten and
    # composed by replicas that did not write them.
    sizes = [1 << 20, 6 << 20, 300_000, 7 << 20, 1 << 20]
    data = random_blob(sum(sizes))
    started = client.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202, started.text
    url, offset = location_url(started), 0
    patched_on: list[int] = []
    for size in sizes:
        piece = data[offset : offset + size]
        end = offset + size - 1
        resp = client.patch(
            url,
            content=piece,
            headers={
                "Content-Range": f"{offset}-{end}",
                "Content-Type": "application/octet-stream",
            },
        )
        patched_on.append(cluster.front.sent[-1])
        assert resp.status_code == 202, resp.text
        assert resp.headers["Range"] == f"0-{end}"
        url, offset = location_url(resp), end + 1
        # The offset is the same whichever replica is asked.
        status = client.get(url)
        assert status.status_code == 204 and status.headers["Range"] == f"0-{end}"
    assert len(set(patched_on)) == len(cluster.replicas)
    digest = sha256_digest(data)
    done = client.put(with_params(url, {"digest": digest}))
    assert done.status_code == 201, done.text
    for replica in cluster.replicas:
        got = httpx.get(f"{replica.url}/v2/{repo}/blobs/{digest}", timeout=60)
        assert got.status_code == 200 and got.content == data


def test_concurrent_pushes_of_different_tags_through_the_proxy_all_land(
    cluster: Cluster,
) -> None:
    repo = f"many/{uuid.uuid4().hex[:8]}"
    per_thread, threads = 3, 8
    failures: list[str] = []
    expected: dict[str, str] = {}
    lock = threading.Lock()

    def pusher(name: str) -> None:
        client = _front(cluster)
        try:
            for i in range(per_thread):
                tag = f"{name}-{i}"
                pushed = push_image(client, repo, tag)
                with lock:
                    expected[tag] = pushed.digest
        except Exception as exc:  # reported below, with every other failure
            failures.append(f"{name}: {exc!r}")

    workers = [threading.Thread(target=pusher, args=(f"t{n}",)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(300)
    assert failures == [], "\n".join(failures)
    assert len(expected) == per_thread * threads
    for replica in cluster.replicas:
        client = httpx.Client(base_url=replica.url, timeout=30)
        assert sorted(list_tags(client, repo)) == sorted(expected)
        for tag, digest in expected.items():
            resp = get_manifest(client, repo, tag, method="HEAD")
            assert resp.headers["Docker-Content-Digest"] == digest
        catalog = client.get("/v2/_catalog")
        assert repo in catalog.json()["repositories"]


def test_a_repository_created_through_one_replica_is_in_every_catalog_at_once(
    cluster: Cluster,
) -> None:
    """Each replica's catalog is a cache of the bucket (their local folders differ), and
    it is validated by the shared change counter on every request."""
    direct = [httpx.Client(base_url=r.url, timeout=30) for r in cluster.replicas]
    for client in direct:
        assert client.get("/v2/_catalog").status_code == 200  # walked, cached
    for n, client in enumerate(direct):
        repo = f"cat/{uuid.uuid4().hex[:8]}-{n}"
        push_image(client, repo, "v1")
        for other in direct:
            assert repo in other.get("/v2/_catalog").json()["repositories"]
    front = _front(cluster)
    repo = f"cat/{uuid.uuid4().hex[:8]}-front"
    push_image(front, repo, "v1")
    for _ in cluster.replicas:  # one request to each replica
        assert repo in front.get("/v2/_catalog").json()["repositories"]


def _retrying(call: Callable[[], httpx.Response], tries: int = 20) -> httpx.Response:
    """A client's retry: a request that reached the killed replica fails at the transport
    (the proxy resets it); the next goes to another replica."""
    for _ in range(tries - 1):
        try:
            return call()
        except httpx.TransportError:
            time.sleep(0.2)
    return call()


def test_kill_9_of_a_replica_mid_upload_loses_no_acknowledged_tag_and_the_retry_succeeds(
    cluster: Cluster,
) -> None:
    client = _front(cluster, timeout=120)
    repo = f"kill/{uuid.uuid4().hex[:8]}"
    acknowledged = {f"before-{n}": push_image(client, repo, f"before-{n}") for n in range(3)}
    data = random_blob(64 << 20)
    digest = sha256_digest(data)
    started = _retrying(lambda: client.post(f"/v2/{repo}/blobs/uploads/"))
    assert started.status_code == 202
    url = location_url(started)
    victim: list[int] = []

    def body() -> Iterator[bytes]:
        for at in range(0, len(data), 1 << 20):
            if at == 24 << 20:  # a third in: kill the replica taking this PATCH
                port = cluster.front.sent[-1]
                replica = next(r for r in cluster.replicas if r.port == port)
                assert replica.proc is not None
                replica.proc.send_signal(signal.SIGKILL)
                replica.proc.wait(10)
                victim.append(port)
            yield data[at : at + (1 << 20)]

    with pytest.raises(httpx.TransportError):
        client.patch(
            url,
            content=body(),
            headers={"Content-Type": "application/octet-stream"},
        )
    assert victim
    # The client asks where the upload stands (through whichever replica) and resumes.
    status = _retrying(lambda: client.get(url))
    assert status.status_code == 204, status.text
    # The cut PATCH was never acknowledged: none of its bytes count (an empty upload).
    assert status.headers["Range"] == "0-0"
    offset = 0
    resumed = _retrying(
        lambda: client.patch(
            url,
            content=data[offset:],
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{len(data) - 1}",
            },
        )
    )
    assert resumed.status_code == 202, resumed.text
    done = _retrying(lambda: client.put(with_params(location_url(resumed), {"digest": digest})))
    assert done.status_code == 201, done.text
    pushed = image_manifest(client, repo)  # through the proxy: the dead replica is skipped
    resp = _retrying(
        lambda: client.put(
            f"/v2/{repo}/manifests/after",
            content=pushed.body,
            headers={"Content-Type": pushed.media_type},
        )
    )
    assert resp.status_code == 201, resp.text
    acknowledged["after"] = pushed
    for replica in cluster.replicas:
        if replica.port in victim:
            continue
        alone = httpx.Client(base_url=replica.url, timeout=120)
        assert sorted(list_tags(alone, repo)) == sorted(acknowledged)
        for tag, image in acknowledged.items():
            assert get_manifest(alone, repo, tag).content == image.body
        got = alone.get(f"/v2/{repo}/blobs/{digest}")
        assert got.status_code == 200 and sha256_digest(got.content) == digest


def test_a_flushall_after_pushes_loses_nothing_on_any_replica(
    cluster: Cluster,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    front = _front(cluster)
    shared_layer = random_blob(4096)
    images: dict[str, tuple[str, bytes]] = {}
    for n in range(4):
        repo = f"flush/{uuid.uuid4().hex[:6]}-{n}"
        push_blob(front, repo, shared_layer)
        pushed = push_image(front, repo, "v1")
        images[repo] = (pushed.digest, pushed.body)
    raw = redis_server.client()
    assert raw.keys(f"{cluster.keyprefix}:*")
    raw.flushall()
    layer = sha256_digest(shared_layer)
    for replica in cluster.replicas:
        alone = httpx.Client(base_url=replica.url, timeout=30)
        listed = alone.get("/v2/_catalog").json()["repositories"]
        for repo, (digest, body) in images.items():
            assert repo in listed
            got = get_manifest(alone, repo, "v1")
            assert got.status_code == 200, got.text
            assert got.content == body and got.headers["Docker-Content-Digest"] == digest
            blob = alone.get(f"/v2/{repo}/blobs/{layer}")
            assert blob.status_code == 200 and blob.content == shared_layer
    # And the cluster keeps taking pushes through the proxy.
    after = push_image(front, next(iter(images)), "after-flush")
    for replica in cluster.replicas:
        alone = httpx.Client(base_url=replica.url, timeout=30)
        assert get_manifest(alone, next(iter(images)), "after-flush").content == after.body


def test_a_redis_outage_is_503_with_retry_after_on_every_replica_and_they_recover(
    tmp_path: Path,
    s3_server: S3Server,
    own_redis: OwnRedis,  # noqa: F811
) -> None:
    cluster = start_cluster(s3_server, own_redis.url, tmp_path)
    try:
        front = _front(cluster)
        repo = f"outage/{uuid.uuid4().hex[:8]}"
        before = push_image(front, repo, "before")
        waiting = image_manifest(front, repo)
        own_redis.stop()
        for _ in cluster.replicas:  # one request to each replica, through the proxy
            got = get_manifest(front, repo, "before")
            assert got.status_code == 503
            assert got.headers["Retry-After"].isdigit()
            assert [e["code"] for e in got.json()["errors"]] == ["UNAVAILABLE"]
        for _ in cluster.replicas:
            put = front.put(
                f"/v2/{repo}/manifests/during",
                content=waiting.body,
                headers={"Content-Type": waiting.media_type},
            )
            assert put.status_code == 503 and put.headers["Retry-After"].isdigit()
        for replica in cluster.replicas:
            assert httpx.get(f"{replica.url}/readyz", timeout=10).status_code == 503
        own_redis.start()  # empty: nothing in it is needed back
        deadline = time.monotonic() + 30
        while any(
            httpx.get(f"{r.url}/readyz", timeout=10).status_code != 200 for r in cluster.replicas
        ):
            assert time.monotonic() < deadline, "a replica did not recover"
            time.sleep(0.2)
        for _ in cluster.replicas:
            assert get_manifest(front, repo, "before").content == before.body
            assert get_manifest(front, repo, "during").status_code == 404  # nothing half-done
        after = push_manifest(front, repo, waiting, "during")
        for replica in cluster.replicas:
            alone = httpx.Client(base_url=replica.url, timeout=30)
            assert get_manifest(alone, repo, "during").headers["Docker-Content-Digest"] == (
                after.digest
            )
    finally:
        cluster.stop()


def test_the_scaleout_example_serves_three_replicas_as_one_registry(
    tmp_path: Path,
    s3_server: S3Server,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """examples/config-scaleout.json (the README's), pointed at the test's bucket, Redis
    and a local folder per replica: each replica verifies and serves what another took."""
    example = Path(__file__).parents[2] / "examples" / "config-scaleout.json"
    bucket, keyprefix = s3_server.new_bucket(), f"ex{uuid.uuid4().hex[:8]}"
    replicas: list[S3Registry] = []
    try:
        for n in range(3):
            doc = json.loads(example.read_text())
            storage = doc["storage"]
            storage["rootDirectory"] = str(tmp_path / f"machine{n}" / "dockyard")
            storage["storageDriver"] |= s3_server.driver(bucket)
            storage["cacheDriver"]["url"] = redis_server.url
            storage["cacheDriver"]["keyprefix"] = keyprefix  # this test's own, in a shared Redis
            doc["http"]["address"] = "127.0.0.1"
            path = tmp_path / f"scaleout-{n}.json"
            path.write_text(json.dumps(doc))
            verified = dockyard_s3("verify", str(path))
            assert verified.returncode == 0 and verified.stderr == "", verified.stderr
            replicas.append(
                start_s3_registry(s3_server, Path(storage["rootDirectory"]), config=doc)
            )
        clients = [httpx.Client(base_url=r.url, timeout=30) for r in replicas]
        for n, client in enumerate(clients):
            pushed = push_image(client, "example/app", f"from-{n}")
            for other in clients:
                assert get_manifest(other, "example/app", f"from-{n}").content == pushed.body
    finally:
        for replica in replicas:
            replica.stop()


def test_two_patches_of_one_session_on_two_replicas_at_once_take_turns(
    cluster: Cluster,
) -> None:
    """Two replicas given the same chunk of one session at once: exactly one takes it
    (202), the other answers the spec's 416 with the moved offset, never a 500 or a
    doubled chunk, and the blob is the chunk's bytes once."""
    a, b = (httpx.Client(base_url=r.url, timeout=60) for r in cluster.replicas[:2])
    repo = f"turns/{uuid.uuid4().hex[:8]}"
    data = random_blob(6 << 20)
    started = a.post(f"/v2/{repo}/blobs/uploads/")
    assert started.status_code == 202
    url = location_url(started)
    statuses: list[int] = []
    go = threading.Barrier(2)

    def patch(client: httpx.Client) -> None:
        def body() -> Iterator[bytes]:
            go.wait()
            for at in range(0, len(data), 256 * 1024):
                time.sleep(0.01)  # a slow client: the two bodies overlap
                yield data[at : at + 256 * 1024]

        resp = client.patch(
            url,
            content=body(),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Range": f"0-{len(data) - 1}",
                "Content-Length": str(len(data)),
            },
        )
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=patch, args=(c,)) for c in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(statuses) == [202, 416]
    for client in (a, b):
        assert client.get(url).headers["Range"] == f"0-{len(data) - 1}"
    done = b.put(with_params(url, {"digest": sha256_digest(data)}))
    assert done.status_code == 201, done.text
    assert a.get(f"/v2/{repo}/blobs/{sha256_digest(data)}").content == data
