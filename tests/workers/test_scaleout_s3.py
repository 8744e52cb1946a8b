"""Three replicas, each with its own local folder, on one moto bucket and one Redis,
behind a round-robin proxy that sends every request to the next replica: they behave as
one registry (issue 12, "replicas on one bucket").
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from clients_helpers import Skopeo, assert_same_image
from images import build_image
from redis_helpers import OwnRedis, RedisServer, own_redis, redis_server  # noqa: F401
from s3_helpers import S3Server
from scaleout_helpers import Cluster, start_cluster
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
def cluster(
    tmp_path: Path,
    s3_server: S3Server,
    redis_server: RedisServer,  # noqa: F811
) -> Iterator[Cluster]:
    started = start_cluster(s3_server, redis_server.url, tmp_path)
    yield started
    started.stop()


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
            headers={"Content-Range": f"{offset}-{end}", "Content-Type": "application/octet-stream"},
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
