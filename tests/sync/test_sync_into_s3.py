"""Mirroring into a root on S3 (moto's server), from Debian's docker-registry.

Fetched blobs go through the storage backend as a push's chunks do, so a mirror may keep
its layouts in a bucket: a periodic pass and on-demand pulls land in the bucket (nothing
in the local folder), real clients pull the identical image, and concurrent requests for
one missing blob all get the exact bytes.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from clients_helpers import Podman, Skopeo, assert_same_image
from conftest import Server
from images import build_image
from s3_helpers import S3Registry, S3Server, s3_config, start_s3_registry
from spec_helpers import push_blob, random_blob, sha256_digest
from sync_helpers import (
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    DockerRegistry,
    docker_registry,
    quiet_log,
    write_credentials,
)

MiB = 1024 * 1024


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[DockerRegistry]:
    with docker_registry(tmp_path / "upstream") as registry:
        yield registry


def _push(skopeo: Skopeo, layout: Path, tag: str, dest: str) -> None:
    skopeo.run(
        "copy",
        "--quiet",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}",
        f"oci:{layout}:{tag}",
        f"docker://{dest}",
    )


def _mirror(
    s3_server: S3Server, tmp_path: Path, upstream: DockerRegistry, servers: list[Server]
) -> S3Registry:
    """dockyard on a new bucket, mirroring ``apps/**`` from ``upstream`` on demand and in
    an hourly pass (its first pass runs at start)."""
    creds = write_credentials(tmp_path / "sync-auth.json", [upstream.host])
    entry = {
        "urls": [upstream.url],
        "onDemand": True,
        "pollInterval": "1h",
        "content": [{"prefix": "apps/**", "tags": {"regex": "^v1"}}],
    }
    sync = {"enable": True, "registries": [entry], "credentialsFile": str(creds)}
    bucket = s3_server.new_bucket()
    extra = {"extensions": {"sync": sync}}
    config = s3_config(s3_server, tmp_path / "data", bucket, extra)
    server = start_s3_registry(s3_server, tmp_path / "data", bucket=bucket, config=config)
    servers.append(server)
    return server


def test_periodic_and_on_demand_sync_into_a_bucket(
    s3_server: S3Server, tmp_path: Path, upstream: DockerRegistry, servers: list[Server]
) -> None:
    """The first pass copies apps/app:v1.0.0 into the bucket and skopeo pulls it byte for
    byte; an image pushed upstream after the pass arrives on demand when podman pulls
    it; every blob is an object in the bucket, none a file in the local folder, and the
    log has no warning or error."""
    skopeo = Skopeo(tmp_path / "skopeo")
    image = build_image(tmp_path / "img", "v1.0.0")
    later = build_image(tmp_path / "later", "v1.2.0")
    _push(skopeo, image.layout, "v1.0.0", f"{upstream.host}/apps/app:v1.0.0")

    server = _mirror(s3_server, tmp_path, upstream, servers)
    deadline = time.monotonic() + 60
    while "sync: pass over" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    assert "1 images, 1 copied" in server.output() or "1 image, 1 copied" in server.output()
    skopeo.pull(f"{server.host}/apps/app:v1.0.0", tmp_path / "out", "v1.0.0")
    assert_same_image(tmp_path / "out", "v1.0.0", image)

    _push(skopeo, later.layout, "v1.2.0", f"{upstream.host}/apps/new:v1.2.0")
    podman = Podman(tmp_path / "podman")
    podman.run("pull", "--tls-verify=false", f"{server.host}/apps/new:v1.2.0")
    image_id = podman.run(
        "image", "inspect", "--format", "{{.Id}}", f"{server.host}/apps/new:v1.2.0"
    )
    assert f"sha256:{image_id.strip()}" == later.config.digest

    keys = set(s3_server.keys(server.bucket))
    for repo, img in (("apps/app", image), ("apps/new", later)):
        for digest in [img.manifest_digest, img.config.digest, *(x.digest for x in img.layers)]:
            assert f"dockyard/{repo}/blobs/sha256/{digest.removeprefix('sha256:')}" in keys
    assert not any("/.uploads/" in key for key in keys), "a finished fetch left its upload"
    assert not (tmp_path / "data" / "apps").exists()
    server.stop()
    assert quiet_log(server.output()) == []


def test_concurrent_pulls_of_a_missing_large_blob_into_a_bucket(
    s3_server: S3Server, tmp_path: Path, upstream: DockerRegistry, servers: list[Server]
) -> None:
    """A 20 MiB blob (several 8 MiB segments, composed at publish) only upstream: four
    clients ask for it at once (joining one fetch) and all get the exact bytes, and the
    blob is then one object in the bucket with no upload left behind."""
    data = random_blob(20 * MiB + 11)
    digest = sha256_digest(data)
    with upstream.client() as up:
        assert push_blob(up, "apps/big", data) == digest
    server = _mirror(s3_server, tmp_path, upstream, servers)

    def pull(_: int) -> tuple[int, bytes]:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            resp = client.get(f"/v2/apps/big/blobs/{digest}")
            return resp.status_code, resp.content

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(pull, range(4)))
    for status, body in answers:
        assert status == 200 and body == data
    keys = set(s3_server.keys(server.bucket))
    assert f"dockyard/apps/big/blobs/sha256/{digest.removeprefix('sha256:')}" in keys
    assert not any("/.uploads/" in key for key in keys)
    server.stop()
    assert quiet_log(server.output()) == []
