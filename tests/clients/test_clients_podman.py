"""podman against a running dockyard: pull, tag, push, pull back.

podman runs with storage of its own in the test's temp folder (vfs driver, own root and
runroot), so the machine's containers are never touched. podman is required: if it is
missing these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from clients_helpers import Podman, Skopeo
from conftest import Server
from images import build_image


def test_podman_pull_tag_push_round_trip(registry: Server, repo: str, tmp_path: Path) -> None:
    """podman pulls an image from dockyard, pushes it under a new name, and pulls that back."""
    image = build_image(tmp_path / "src", "v1")
    Skopeo(tmp_path / "skopeo-home").push(image.layout, "v1", f"{registry.host}/{repo}:v1")
    podman = Podman(tmp_path / "podman")

    source = f"{registry.host}/{repo}:v1"
    podman.run("pull", "--tls-verify=false", source)
    image_id = podman.run("image", "inspect", "--format", "{{.Id}}", source).strip()
    assert f"sha256:{image_id}" == image.config.digest, "image id is not the config digest"

    copy = f"{registry.host}/{repo}-copy:v2"
    podman.run("tag", source, copy)
    podman.run("push", "--tls-verify=false", "--format", "oci", copy)
    podman.run("rmi", "--all", "--force")

    podman.run("pull", "--tls-verify=false", copy)
    again = podman.run("image", "inspect", "--format", "{{.Id}}", copy).strip()
    assert again == image_id
    tags = json.loads(
        subprocess.run(
            ["curl", "-s", f"{registry.url}/v2/{repo}-copy/tags/list"],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert tags == {"name": f"{repo}-copy", "tags": ["v2"]}
