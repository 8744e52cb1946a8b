"""On-demand mirroring with workers: the manifest is fetched by one worker, the client's
blob GETs may reach another, which has never talked to the upstream: it must log in to
the upstream too (a Basic challenge answered for concurrent first requests)."""

from __future__ import annotations

from pathlib import Path

from clients_helpers import Skopeo, assert_same_image
from images import build_image
from sync_helpers import (
    UPSTREAM_PASSWORD,
    UPSTREAM_USER,
    docker_registry,
    sync_config,
    write_credentials,
)
from workers_helpers import start_workers


def test_skopeo_pulls_through_the_mirror_with_workers(tmp_path: Path) -> None:
    with docker_registry(tmp_path / "upstream") as upstream:
        skopeo = Skopeo(tmp_path / "skopeo")
        creds = write_credentials(tmp_path / "sync-auth.json", [upstream.host])
        entry = {"urls": [upstream.url], "onDemand": True, "content": [{"prefix": "apps/**"}]}
        config = sync_config(tmp_path / "config.json", [entry], creds)
        server = start_workers(tmp_path / "data", 2, config=config)
        try:
            for i in range(3):
                image = build_image(tmp_path / f"img{i}", "v1", layers=4)
                skopeo.run(
                    "copy",
                    "--quiet",
                    "--preserve-digests",
                    "--dest-tls-verify=false",
                    "--dest-creds",
                    f"{UPSTREAM_USER}:{UPSTREAM_PASSWORD}",
                    f"oci:{image.layout}:v1",
                    f"docker://{upstream.host}/apps/app{i}:v1",
                )
                out = tmp_path / f"out{i}"
                skopeo.pull(f"{server.host}/apps/app{i}:v1", out, "v1")
                assert_same_image(out, "v1", image)
        finally:
            server.stop()
