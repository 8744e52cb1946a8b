"""Dedupe across replicas on one bucket and one Redis (issue 12, item 3).

A digest's bytes are stored once per root (``_dockyard/blobs/<alg>/<hex>``) and each
repository holds a reference object naming them; Redis only speeds up "who holds this
digest". These tests push through the round-robin proxy, so each step may land on any
replica, and check the bucket: one copy however the pushes race, every image served by
every replica after a ``FLUSHALL``, and the copy and its Redis key gone after GC.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import httpx
from clients_helpers import Skopeo, assert_same_image
from images import build_image
from redis_helpers import RedisServer, redis_server  # noqa: F401
from s3_helpers import S3Server, dockyard_s3, write_config
from scaleout_helpers import Cluster, cluster_fixture, start_cluster
from spec_helpers import push_blob, random_blob, sha256_digest

SHARED = "dockyard/_dockyard/blobs/sha256"


cluster = cluster_fixture(start_cluster)


def _sizes(s3: S3Server, bucket: str) -> dict[str, int]:
    client = s3.client()
    return {
        key: client.head_object(Bucket=bucket, Key=key)["ContentLength"] for key in s3.keys(bucket)
    }


def test_concurrent_pushes_of_one_blob_to_many_repositories_store_it_once(
    cluster: Cluster,
) -> None:
    """Eight clients upload the same blob to eight repositories at once, through three
    replicas: every push succeeds, the bucket holds its bytes once, each repository a
    reference, no upload is left, and every replica serves it from every repository."""
    data = random_blob(6 << 20)
    digest = sha256_digest(data)
    repos = [f"race/{uuid.uuid4().hex[:6]}-{n}" for n in range(8)]
    failures: list[str] = []
    go = threading.Barrier(len(repos))

    def push(repo: str) -> None:
        try:
            with httpx.Client(base_url=cluster.front.url, timeout=120) as client:
                go.wait()
                push_blob(client, repo, data)
        except Exception as exc:  # reported below, with every other failure
            failures.append(f"{repo}: {exc!r}")

    threads = [threading.Thread(target=push, args=(repo,)) for repo in repos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert failures == [], "\n".join(failures)
    sizes = _sizes(cluster.s3, cluster.bucket)
    hexd = digest.removeprefix("sha256:")
    assert [key for key, size in sizes.items() if size == len(data)] == [f"{SHARED}/{hexd}"]
    for repo in repos:
        assert sizes[f"dockyard/{repo}/blobs/sha256/{hexd}"] == 0
        assert f"{SHARED}/.{hexd}.refs/{repo}/blobs/sha256/{hexd}" in sizes
    assert not [key for key in sizes if "/.uploads/" in key], "an upload was left behind"
    for replica in cluster.replicas:
        with httpx.Client(base_url=replica.url, timeout=60) as alone:
            for repo in repos:
                got = alone.get(f"/v2/{repo}/blobs/{digest}")
                assert got.status_code == 200 and got.content == data, (replica.port, repo)


def test_flushall_loses_no_deduplicated_image_and_gc_drops_the_copy_and_its_key(
    tmp_path: Path,
    cluster: Cluster,
    redis_server: RedisServer,  # noqa: F811
) -> None:
    """skopeo pushes one image to three repositories (stored once). After a ``FLUSHALL``
    every replica serves every image (skopeo pulls each), the map is rebuilt from the
    bucket (a pusher's HEAD links again). With every image deleted, ``dockyard gc`` on
    a replica's config removes the shared copies and Redis keeps no key naming them."""
    image = build_image(tmp_path / "src", "v1", layers=2)
    skopeo = Skopeo(tmp_path / "home")
    repos = [f"flushed/{uuid.uuid4().hex[:6]}-{n}" for n in range(3)]
    for repo in repos:
        skopeo.push(image.layout, "v1", f"{cluster.front.host}/{repo}:v1")
    blobs = [image.config.digest, *(layer.digest for layer in image.layers)]
    sizes = _sizes(cluster.s3, cluster.bucket)
    for digest in blobs:
        hexd = digest.removeprefix("sha256:")
        assert sizes[f"{SHARED}/{hexd}"] > 0
        assert [k for k, n in sizes.items() if k.endswith(hexd) and n > 0] == [f"{SHARED}/{hexd}"]
    raw = redis_server.client()
    assert raw.keys(f"{cluster.keyprefix}:*paths:{blobs[-1]}")
    raw.flushall()

    for n, replica in enumerate(cluster.replicas):
        for repo in repos:
            out = tmp_path / f"out-{n}-{repo.replace('/', '_')}"
            skopeo.pull(f"{replica.host}/{repo}:v1", out, "v1")
            assert_same_image(out, "v1", image)
    # Adoption puts the records back from the bucket: a pusher's HEAD links again.
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=cluster.front.url, timeout=60) as client:
        while client.head(f"/v2/after/flush/blobs/{blobs[-1]}").status_code != 200:
            assert time.monotonic() < deadline, "the map was never rebuilt"
            time.sleep(0.5)
        assert client.get(f"/v2/after/flush/blobs/{blobs[-1]}").status_code == 200
        for repo in [*repos, "after/flush"]:
            manifest = client.head(
                f"/v2/{repo}/manifests/v1", headers={"Accept": image.manifest.media_type}
            )
            if manifest.status_code == 200:
                gone = client.delete(f"/v2/{repo}/manifests/{image.manifest.digest}")
                assert gone.status_code == 202, gone.text
        gone = client.delete(f"/v2/after/flush/blobs/{blobs[-1]}")
        assert gone.status_code == 202, gone.text

    config = json.loads(Path(cluster.replicas[0].args[0]).read_text())
    config["storage"]["gcDelay"] = "0s"
    path = write_config(tmp_path / "gc.json", config)
    proc = dockyard_s3("gc", str(path), timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert cluster.s3.keys(cluster.bucket, SHARED) == [], proc.stdout
    for digest in blobs:
        assert raw.keys(f"{cluster.keyprefix}:*paths:{digest}") == [], digest
    for replica in cluster.replicas:
        assert httpx.get(f"{replica.url}/v2/{repos[0]}/blobs/{blobs[-1]}").status_code == 404
