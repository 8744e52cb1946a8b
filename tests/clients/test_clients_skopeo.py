"""skopeo and umoci against a running dockyard: real clients, real OCI layouts.

Images are built on disk by ``images.py`` with fresh random content, pushed with
``skopeo copy`` and pulled back; digests and bytes must survive the round trip exactly
(``--preserve-digests`` makes skopeo refuse to rewrite anything). The server's own storage
is then read as a plain OCI image layout by skopeo's ``oci:`` transport and by umoci.

skopeo is required: if it is missing these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from clients_helpers import Skopeo, assert_same_image, assert_same_index
from conftest import Server, start_server
from images import (
    INDEX,
    MANIFEST,
    REF_NAME,
    build_image,
    build_index,
    read_blob,
    read_index,
)


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(tmp_path / "skopeo-home")


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers a test starts itself; stopped whatever happens."""
    servers: list[Server] = []
    yield servers
    for server in servers:
        server.stop()


def test_push_and_pull_multi_layer_image_round_trips(
    registry: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    """An image pushed with skopeo pulls back with the same manifest digest and layer bytes."""
    image = build_image(tmp_path / "src", "v1")
    skopeo.push(image.layout, "v1", f"{registry.host}/{repo}:v1")

    out = tmp_path / "out"
    skopeo.pull(f"{registry.host}/{repo}:v1", out, "v1")
    assert_same_image(out, "v1", image)

    by_digest = tmp_path / "by-digest"
    skopeo.pull(f"{registry.host}/{repo}@{image.manifest_digest}", by_digest, "d")
    assert_same_image(by_digest, "d", image)


def test_multi_arch_index_round_trips_with_all(
    registry: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    """``skopeo copy --all`` pushes and pulls an index with every platform's image intact."""
    index = build_index(tmp_path / "src", "multi")
    skopeo.push(index.layout, "multi", f"{registry.host}/{repo}:multi", all_images=True)

    for child in index.children.values():
        raw = skopeo.run(
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{registry.host}/{repo}@{child.manifest_digest}",
        ).stdout
        assert raw == child.blob(child.manifest_digest)

    out = tmp_path / "out"
    skopeo.pull(f"{registry.host}/{repo}:multi", out, "multi", all_images=True)
    assert_same_index(out, "multi", index)


def test_inspect_raw_returns_the_pushed_bytes(
    registry: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    """``skopeo inspect --raw`` returns the manifest, index and config exactly as pushed."""
    layout = tmp_path / "src"
    image = build_image(layout, "img")
    index = build_index(layout, "multi")
    skopeo.push(layout, "img", f"{registry.host}/{repo}:img")
    skopeo.push(layout, "multi", f"{registry.host}/{repo}:multi", all_images=True)
    ref = f"docker://{registry.host}/{repo}"

    raw = skopeo.run("inspect", "--tls-verify=false", "--raw", f"{ref}:img").stdout
    assert raw == image.blob(image.manifest_digest)
    assert json.loads(raw)["mediaType"] == MANIFEST

    raw = skopeo.run("inspect", "--tls-verify=false", "--raw", f"{ref}:multi").stdout
    assert raw == read_blob(layout, index.index_digest)
    assert json.loads(raw)["mediaType"] == INDEX

    config = skopeo.run("inspect", "--tls-verify=false", "--config", "--raw", f"{ref}:img").stdout
    assert config == image.blob(image.config.digest)

    info = json.loads(skopeo.run("inspect", "--tls-verify=false", f"{ref}:img").stdout)
    assert info["Digest"] == image.manifest_digest
    assert info["Layers"] == image.layer_digests
    assert (info["Os"], info["Architecture"]) == image.platform


def test_list_tags_shows_every_pushed_tag(
    registry: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    """``skopeo list-tags`` lists each tag pushed to a repository, and only those."""
    layout = tmp_path / "src"
    build_image(layout, "one")
    build_image(layout, "two")
    for name in ("one", "two"):
        skopeo.push(layout, name, f"{registry.host}/{repo}:{name}")
    # A second tag on an existing manifest, set registry-side by skopeo itself.
    skopeo.run(
        "copy",
        "--quiet",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{registry.host}/{repo}:one",
        f"docker://{registry.host}/{repo}:three",
    )

    listed = json.loads(
        skopeo.run("list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}").stdout
    )
    assert sorted(listed["Tags"]) == ["one", "three", "two"]


def test_delete_removes_the_image(
    registry: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    """After ``skopeo delete``, pulling the tag or the digest fails; other tags stay."""
    layout = tmp_path / "src"
    doomed = build_image(layout, "doomed")
    kept = build_image(layout, "kept")
    skopeo.push(layout, "doomed", f"{registry.host}/{repo}:doomed")
    skopeo.push(layout, "kept", f"{registry.host}/{repo}:kept")

    skopeo.run("delete", "--tls-verify=false", f"docker://{registry.host}/{repo}:doomed")

    for ref in (f"{repo}:doomed", f"{repo}@{doomed.manifest_digest}"):
        proc = skopeo.run(
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            f"docker://{registry.host}/{ref}",
            f"oci:{tmp_path / 'gone'}:x",
            check=False,
        )
        assert proc.returncode != 0, f"pulling deleted {ref} succeeded"
        proc = skopeo.run(
            "inspect",
            "--tls-verify=false",
            "--raw",
            f"docker://{registry.host}/{ref}",
            check=False,
        )
        assert proc.returncode != 0, f"inspecting deleted {ref} succeeded"

    listed = json.loads(
        skopeo.run("list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}").stdout
    )
    assert listed["Tags"] == ["kept"]
    out = tmp_path / "out"
    skopeo.pull(f"{registry.host}/{repo}:kept", out, "kept")
    assert_same_image(out, "kept", kept)


def test_server_storage_is_an_oci_layout_skopeo_and_umoci_read(
    fresh_registry: Server, repo: str, skopeo: Skopeo, tmp_path: Path
) -> None:
    """The server's ``<root>/<repo>`` directory is itself a layout skopeo and umoci can read."""
    layout = tmp_path / "src"
    image = build_image(layout, "v1")
    index = build_index(layout, "multi")
    skopeo.push(layout, "v1", f"{fresh_registry.host}/{repo}:v1")
    skopeo.push(layout, "multi", f"{fresh_registry.host}/{repo}:multi", all_images=True)

    stored = fresh_registry.root / repo
    assert json.loads((stored / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"
    refs = {
        (d.get("annotations") or {}).get(REF_NAME): d["digest"]
        for d in read_index(stored)["manifests"]
    }
    assert refs.get("v1") == image.manifest_digest
    assert refs.get("multi") == index.index_digest

    out = tmp_path / "copied"
    skopeo.run("copy", "--quiet", "--preserve-digests", f"oci:{stored}:v1", f"oci:{out}:v1")
    assert_same_image(out, "v1", image)
    skopeo.run(
        "copy",
        "--quiet",
        "--all",
        "--preserve-digests",
        f"oci:{stored}:multi",
        f"oci:{out}:multi",
    )
    assert_same_index(out, "multi", index)

    umoci = subprocess.run(
        ["umoci", "ls", "--layout", str(stored)], capture_output=True, text=True, timeout=60
    )
    assert umoci.returncode == 0, umoci.stderr
    assert {"v1", "multi"} <= set(umoci.stdout.split())


def test_existing_oci_layout_is_served_as_it_is(
    tmp_path: Path, repo: str, skopeo: Skopeo, own_server: list[Server]
) -> None:
    """A layout placed under the root before start is served: tags list, images pull intact."""
    root = tmp_path / "data"
    layout = root / repo
    image = build_image(layout, "v1")
    index = build_index(layout, "multi")
    before = {p.relative_to(layout): p.read_bytes() for p in layout.rglob("*") if p.is_file()}

    server = start_server(root)
    own_server.append(server)

    listed = json.loads(
        skopeo.run("list-tags", "--tls-verify=false", f"docker://{server.host}/{repo}").stdout
    )
    assert sorted(listed["Tags"]) == ["multi", "v1"]

    out = tmp_path / "out"
    skopeo.pull(f"{server.host}/{repo}:v1", out, "v1")
    assert_same_image(out, "v1", image)
    skopeo.pull(f"{server.host}/{repo}:multi", out, "multi", all_images=True)
    assert_same_index(out, "multi", index)

    # Serving reads the layout; it rewrites none of the blobs it was given.
    for rel, data in before.items():
        if rel.parts[0] == "blobs":
            assert (layout / rel).read_bytes() == data, f"{rel} changed"
