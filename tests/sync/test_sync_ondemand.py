"""On-demand pull-through (``extensions.sync`` with ``onDemand``) against real upstreams.

The upstream is Debian's docker-registry with htpasswd; dockyard reaches it with the
credentials of zot's ``credentialsFile``. Clients (skopeo, podman, httpx) pull from
dockyard anonymously; what they get, and what lands in dockyard's root, must be the
upstream's bytes exactly, under the upstream's digests, as valid OCI layouts.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving, write_config, write_htpasswd
from clients_helpers import Podman, Skopeo, assert_same_image, assert_same_index
from conftest import Server, free_port
from images import INDEX, blob_path, build_image, build_index, read_blob
from spec_helpers import (
    MANIFEST_ACCEPT,
    assert_error,
    image_manifest,
    index_manifest,
    push_image,
    push_manifest,
)
from sync_helpers import DockerRegistry, docker_registry, sync_config, unique, write_credentials


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[DockerRegistry]:
    with docker_registry(tmp_path / "upstream") as registry:
        yield registry


def _push_layout(
    skopeo: Skopeo, layout: Path, tag: str, dest: str, *, all_images: bool = False
) -> None:
    """Push an OCI layout to the htpasswd-protected upstream with its credentials."""
    extra = ["--all"] if all_images else []
    skopeo.run(
        "copy",
        "--quiet",
        "--preserve-digests",
        *extra,
        "--dest-tls-verify=false",
        "--dest-creds",
        "mirror:mirror-pw",
        f"oci:{layout}:{tag}",
        f"docker://{dest}",
    )


def _mirror(tmp_path: Path, upstream_urls: list[str], hosts: list[str], **registry: object) -> Path:
    creds = write_credentials(tmp_path / "sync-auth.json", hosts)
    entry = {
        "urls": upstream_urls,
        "onDemand": True,
        "content": [{"prefix": "apps/**"}],
        **registry,
    }
    return sync_config(tmp_path / "config.json", [entry], creds)


@pytest.fixture
def mirror(tmp_path: Path, upstream: DockerRegistry) -> Iterator[Server]:
    config = _mirror(tmp_path, [upstream.url], [upstream.host])
    with serving(tmp_path / "data", config) as server:
        yield server


def test_skopeo_pulls_image_and_index_through_the_mirror(
    tmp_path: Path, upstream: DockerRegistry, mirror: Server
) -> None:
    """skopeo pulls an image and a multi-arch index that only the upstream holds; both arrive
    byte for byte with the upstream's digests, and dockyard's copies are valid OCI layouts."""
    skopeo = Skopeo(tmp_path / "skopeo")
    image = build_image(tmp_path / "img", "v1")
    index = build_index(tmp_path / "idx", "multi")
    repo, multi = unique("apps"), unique("apps")
    _push_layout(skopeo, image.layout, "v1", f"{upstream.host}/{repo}:v1")
    _push_layout(skopeo, index.layout, "multi", f"{upstream.host}/{multi}:multi", all_images=True)

    skopeo.pull(f"{mirror.host}/{repo}:v1", tmp_path / "out", "v1")
    assert_same_image(tmp_path / "out", "v1", image)
    skopeo.pull(f"{mirror.host}/{multi}:multi", tmp_path / "out2", "multi", all_images=True)
    assert_same_index(tmp_path / "out2", "multi", index)

    stored = mirror.root / repo
    assert read_blob(stored, image.manifest_digest) == read_blob(
        image.layout, image.manifest_digest
    )
    for digest in image.blob_digests:
        assert blob_path(stored, digest).read_bytes() == image.blob(digest)
    stored_index = mirror.root / multi
    assert read_blob(stored_index, index.index_digest) == read_blob(
        index.layout, index.index_digest
    )
    for layout in (stored, stored_index):
        umoci = subprocess.run(["umoci", "ls", "--layout", str(layout)], capture_output=True)
        assert umoci.returncode == 0, umoci.stderr.decode()
    assert (
        "v1"
        in subprocess.run(
            ["umoci", "ls", "--layout", str(stored)], capture_output=True, text=True
        ).stdout
    )


def test_podman_pulls_through_the_mirror(
    tmp_path: Path, upstream: DockerRegistry, mirror: Server
) -> None:
    """podman pulls an image only the upstream holds; its id is the upstream config digest."""
    image = build_image(tmp_path / "img", "v1")
    repo = unique("apps")
    _push_layout(Skopeo(tmp_path / "skopeo"), image.layout, "v1", f"{upstream.host}/{repo}:v1")
    podman = Podman(tmp_path / "podman")
    podman.run("pull", "--tls-verify=false", f"{mirror.host}/{repo}:v1")
    image_id = podman.run("image", "inspect", "--format", "{{.Id}}", f"{mirror.host}/{repo}:v1")
    assert f"sha256:{image_id.strip()}" == image.config.digest


def test_names_outside_the_prefix_are_not_fetched(upstream: DockerRegistry, mirror: Server) -> None:
    """Only names a ``content`` prefix covers are mirrored: others stay 404 NAME_UNKNOWN."""
    with upstream.client() as up:
        pushed = push_image(up, "other/app", "v1")
    with httpx.Client(base_url=mirror.url, timeout=30) as c:
        assert_error(c.get("/v2/other/app/manifests/v1"), 404, "NAME_UNKNOWN")
        assert_error(c.get(f"/v2/other/app/blobs/{pushed.blobs[0]}"), 404, "NAME_UNKNOWN")
        # Under the prefix but absent upstream too: still a plain 404.
        assert_error(c.get("/v2/apps/nothing/manifests/v1"), 404, "NAME_UNKNOWN")


def test_blob_get_and_head_by_digest_through_the_mirror(
    upstream: DockerRegistry, mirror: Server
) -> None:
    """A blob asked for by digest alone is fetched and stored; a HEAD answers without storing."""
    repo = unique("apps")
    with upstream.client() as up:
        pushed = push_image(up, repo, "v1")
        config_bytes = up.get(f"/v2/{repo}/blobs/{pushed.blobs[0]}").content
    with httpx.Client(base_url=mirror.url, timeout=30) as c:
        head = c.head(f"/v2/{repo}/blobs/{pushed.blobs[1]}")
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == pushed.blobs[1]
        assert int(head.headers["Content-Length"]) == 48
        assert not blob_path(mirror.root / repo, pushed.blobs[1]).exists()
        got = c.get(f"/v2/{repo}/blobs/{pushed.blobs[0]}")
        assert got.status_code == 200 and got.content == config_bytes
    assert blob_path(mirror.root / repo, pushed.blobs[0]).read_bytes() == config_bytes


def test_upstream_down_and_back(tmp_path: Path, upstream: DockerRegistry, mirror: Server) -> None:
    """With the upstream down, what was mirrored is served and what was not is a prompt 404;
    once it is back, the missing image is fetched."""
    first, second = unique("apps"), unique("apps")
    with upstream.client() as up:
        a = push_image(up, first, "v1")
        b = push_image(up, second, "v1")
    with httpx.Client(base_url=mirror.url, timeout=30) as c:
        got = c.get(f"/v2/{first}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert got.status_code == 200 and got.content == a.body
        for digest in a.blobs:
            assert c.get(f"/v2/{first}/blobs/{digest}").status_code == 200
        upstream.stop()
        again = c.get(f"/v2/{first}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert again.status_code == 200 and again.content == a.body
        started = time.monotonic()
        missing = c.get(f"/v2/{second}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert_error(missing, 404, "NAME_UNKNOWN")
        assert_error(c.get(f"/v2/{second}/blobs/{b.blobs[0]}"), 404, "NAME_UNKNOWN")
        assert time.monotonic() - started < 10, "a down upstream must not hold the client"
        upstream.start()
        back = c.get(f"/v2/{second}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert back.status_code == 200 and back.content == b.body


def test_urls_are_tried_in_order(tmp_path: Path, upstream: DockerRegistry) -> None:
    """A first URL that is down is skipped; the second one serves the image."""
    dead = f"http://127.0.0.1:{free_port()}"
    config = _mirror(tmp_path, [dead, upstream.url], [upstream.host])
    repo = unique("apps")
    with upstream.client() as up:
        pushed = push_image(up, repo, "v1")
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        got = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert got.status_code == 200 and got.content == pushed.body


def test_distribution_proxy_shortcut(tmp_path: Path, upstream: DockerRegistry) -> None:
    """distribution's ``proxy: {remoteurl, username, password}`` mirrors every name on demand."""
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {"proxy": {"remoteurl": upstream.url, "username": "mirror", "password": "mirror-pw"}}
        )
    )
    with upstream.client() as up:
        pushed = push_image(up, "any/name", "v1")
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        got = c.get("/v2/any/name/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert got.status_code == 200 and got.content == pushed.body
        assert got.headers["Docker-Content-Digest"] == pushed.digest
    assert (tmp_path / "data" / "any/name" / "index.json").is_file()


def test_stale_tag_is_rechecked_after_its_ttl(tmp_path: Path, upstream: DockerRegistry) -> None:
    """With ``tagTTL: 0s`` every read of a mirrored tag re-checks the upstream's digest (a
    HEAD) and follows a moved tag; with the default TTL the local tag is served as it is."""
    repo = unique("apps")
    with upstream.client() as up:
        old = push_image(up, repo, "latest")
        for ttl, expected in (("0s", "new"), ("1h", "old")):
            config = _mirror(tmp_path, [upstream.url], [upstream.host], tagTTL=ttl)
            root = tmp_path / f"data-{ttl}"
            with serving(root, config) as server, httpx.Client(base_url=server.url) as c:
                push_image(up, repo, "latest")  # a stale state first: reset upstream below
                up.put(
                    f"/v2/{repo}/manifests/latest",
                    content=old.body,
                    headers={"Content-Type": old.media_type},
                ).raise_for_status()
                first = c.get(f"/v2/{repo}/manifests/latest", headers={"Accept": MANIFEST_ACCEPT})
                assert first.content == old.body
                new = push_image(up, repo, "latest")
                later = c.get(f"/v2/{repo}/manifests/latest", headers={"Accept": MANIFEST_ACCEPT})
                want = new if expected == "new" else old
                assert later.status_code == 200
                assert later.headers["Docker-Content-Digest"] == want.digest, ttl


def test_index_children_are_stored_with_it(upstream: DockerRegistry, mirror: Server) -> None:
    """A GET of an index fetches its child manifests too: each is served by digest at once."""
    repo = unique("apps")
    with upstream.client() as up:
        children = [push_image(up, repo) for _ in range(2)]
        index = push_manifest(up, repo, index_manifest(children), "multi")
    with httpx.Client(base_url=mirror.url, timeout=30) as c:
        got = c.get(f"/v2/{repo}/manifests/multi", headers={"Accept": MANIFEST_ACCEPT})
        assert got.status_code == 200 and got.content == index.body
        assert got.headers["Content-Type"] == INDEX
        for child in children:
            assert read_blob(mirror.root / repo, child.digest) == child.body


@pytest.fixture
def dockyard_upstream(tmp_path: Path) -> Iterator[Server]:
    """A second dockyard with htpasswd: an upstream that has the referrers API."""
    htpasswd = write_htpasswd(tmp_path / "up-htpasswd", {"mirror": "mirror-pw"})
    config = write_config(tmp_path / "up.json", {"auth": {"htpasswd": {"path": str(htpasswd)}}})
    with serving(tmp_path / "up-data", config) as server:
        yield server


def test_manifest_get_brings_blobs_and_referrers_in_background(
    tmp_path: Path, dockyard_upstream: Server
) -> None:
    """A client that fetches only a manifest still leaves a complete OCI layout behind:
    the image's blobs and its referrers (a signature) follow in the background."""
    repo = unique("apps")
    with httpx.Client(
        base_url=dockyard_upstream.url, auth=("mirror", "mirror-pw"), timeout=30
    ) as up:
        pushed = push_image(up, repo, "v1", layers=2)
        signature = push_manifest(
            up,
            repo,
            image_manifest(
                up, repo, artifact_type="application/vnd.test.sig", subject=pushed.descriptor()
            ),
        )
    config = _mirror(tmp_path, [dockyard_upstream.url], [dockyard_upstream.host])
    with serving(tmp_path / "data", config) as server, httpx.Client(base_url=server.url) as c:
        got = c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert got.status_code == 200 and got.content == pushed.body
        stored = server.root / repo
        deadline = time.monotonic() + 30
        while True:
            have = all(blob_path(stored, d).exists() for d in pushed.blobs)
            listed = c.get(f"/v2/{repo}/referrers/{pushed.digest}").json().get("manifests", [])
            if have and [r["digest"] for r in listed] == [signature.digest]:
                break
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.1)
    umoci = subprocess.run(["umoci", "ls", "--layout", str(stored)], capture_output=True)
    assert umoci.returncode == 0, umoci.stderr.decode()
