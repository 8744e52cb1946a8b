"""Debian's docker-registry with htpasswd as the upstream of periodic and on-demand sync.

The mirror logs in with zot's ``credentialsFile``; skopeo and podman then pull from
dockyard anonymously. A periodic pass must bring an image and a multi-arch index byte for
byte (regex and semver keep only the versions asked for); on demand must bring what was
pushed after the pass. Without the credentials the pass must fail, which shows the
upstream really wants them. Neither leaves an error line or a traceback in the log.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving
from clients_helpers import Podman, Skopeo, assert_same_image, assert_same_index
from conftest import Server
from images import build_image, build_index, read_blob
from spec_helpers import list_tags
from sync_helpers import (
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    DockerRegistry,
    docker_registry,
    quiet_log,
    sync_config,
    write_credentials,
)


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[DockerRegistry]:
    with docker_registry(tmp_path / "upstream") as registry:
        yield registry


def _push(skopeo: Skopeo, layout: Path, tag: str, dest: str, *, all_images: bool = False) -> None:
    skopeo.run(
        "copy",
        "--quiet",
        "--preserve-digests",
        *(["--all"] if all_images else []),
        "--dest-tls-verify=false",
        "--dest-creds",
        f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}",
        f"oci:{layout}:{tag}",
        f"docker://{dest}",
    )


def _config(tmp_path: Path, upstream: DockerRegistry, *, credentials: bool) -> Path:
    creds = write_credentials(tmp_path / "sync-auth.json", [upstream.host]) if credentials else None
    entry = {
        "urls": [upstream.url],
        "onDemand": True,
        "pollInterval": "1h",
        "content": [{"prefix": "apps/**", "tags": {"regex": "^v1", "semver": True}}],
    }
    top = {"storage": {"rootDirectory": str(tmp_path / "data")}}
    return sync_config(tmp_path / "config.json", [entry], creds, **top)


def _first_pass(server: Server) -> str:
    deadline = time.monotonic() + 60
    while "sync: pass over" not in server.output():
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    return server.output()


def test_periodic_and_on_demand_from_docker_registry_with_htpasswd(
    tmp_path: Path, upstream: DockerRegistry
) -> None:
    """The server's first pass copies apps/app:v1.0.0 and the index apps/multi:v1.1.0 (not
    apps/app:latest, which the rules drop); skopeo pulls both from dockyard byte for byte.
    An image pushed after the pass arrives on demand when podman pulls it."""
    skopeo = Skopeo(tmp_path / "skopeo")
    image = build_image(tmp_path / "img", "v1.0.0")
    other = build_image(tmp_path / "other", "latest")
    index = build_index(tmp_path / "idx", "v1.1.0")
    later = build_image(tmp_path / "later", "v1.2.0")
    _push(skopeo, image.layout, "v1.0.0", f"{upstream.host}/apps/app:v1.0.0")
    _push(skopeo, other.layout, "latest", f"{upstream.host}/apps/app:latest")
    _push(skopeo, index.layout, "v1.1.0", f"{upstream.host}/apps/multi:v1.1.0", all_images=True)

    with serving(tmp_path / "data", _config(tmp_path, upstream, credentials=True)) as server:
        summary = _first_pass(server)
        assert "2 images, 2 copied, 0 up to date, 0 failed" in summary, summary
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert list_tags(c, "apps/app") == ["v1.0.0"]
            assert list_tags(c, "apps/multi") == ["v1.1.0"]
        root = tmp_path / "data"
        assert read_blob(root / "apps/multi", index.index_digest) == read_blob(
            index.layout, index.index_digest
        )
        for layout in (root / "apps/app", root / "apps/multi"):
            umoci = subprocess.run(["umoci", "ls", "--layout", str(layout)], capture_output=True)
            assert umoci.returncode == 0, umoci.stderr.decode()

        skopeo.pull(f"{server.host}/apps/app:v1.0.0", tmp_path / "out", "v1.0.0")
        assert_same_image(tmp_path / "out", "v1.0.0", image)
        skopeo.pull(
            f"{server.host}/apps/multi:v1.1.0", tmp_path / "out2", "v1.1.0", all_images=True
        )
        assert_same_index(tmp_path / "out2", "v1.1.0", index)

        _push(skopeo, later.layout, "v1.2.0", f"{upstream.host}/apps/new:v1.2.0")
        podman = Podman(tmp_path / "podman")
        podman.run("pull", "--tls-verify=false", f"{server.host}/apps/new:v1.2.0")
        image_id = podman.run(
            "image", "inspect", "--format", "{{.Id}}", f"{server.host}/apps/new:v1.2.0"
        )
        assert f"sha256:{image_id.strip()}" == later.config.digest
        assert "sync: fetched apps/new:v1.2.0" in server.output()
        server.stop()
        assert quiet_log(server.output()) == []


def test_without_credentials_docker_registry_refuses_the_pass(
    tmp_path: Path, upstream: DockerRegistry
) -> None:
    """No credentialsFile: docker-registry answers 401 to the catalog and ``dockyard sync
    --once`` says no upstream answered and exits 1; with the file the same pass works."""
    image = build_image(tmp_path / "img", "v1.0.0")
    _push(Skopeo(tmp_path / "skopeo"), image.layout, "v1.0.0", f"{upstream.host}/apps/app:v1.0.0")
    for credentials, status, said in (
        (False, 1, "no upstream URL answered"),
        (True, 0, "1 copied"),
    ):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "dockyard",
                "sync",
                str(_config(tmp_path, upstream, credentials=credentials)),
                "--once",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == status, done.stdout + done.stderr
        assert said in done.stdout, done.stdout
        assert "Traceback" not in done.stderr
