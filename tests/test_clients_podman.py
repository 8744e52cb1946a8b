"""podman against a running dockyard: pull, tag, push, pull back.

podman runs with storage of its own in the test's temp folder (vfs driver, own root and
runroot), so the machine's containers are never touched. podman is required: if it is
missing these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import Server
from images import build_image
from test_clients_skopeo import Skopeo


class Podman:
    """podman with isolated storage and config, talking plain HTTP to loopback."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        conf = home / "storage.conf"
        conf.write_text(
            "[storage]\n"
            'driver = "vfs"\n'
            f'runroot = "{home / "run"}"\n'
            f'graphroot = "{home / "graph"}"\n'
        )
        registries = home / "registries.conf"
        registries.write_text("")
        policy = home / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.args = ["--signature-policy", str(policy)]
        self.env = {
            **os.environ,
            "HOME": str(home),
            "CONTAINERS_STORAGE_CONF": str(conf),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "XDG_RUNTIME_DIR": str(home / "xdg"),
        }
        (home / "xdg").mkdir(exist_ok=True)
        (home / "auth.json").write_text("{}")

    def run(self, *args: str) -> str:
        sub, rest = args[0], list(args[1:])
        policy = self.args if sub in ("pull", "push") else []
        proc = subprocess.run(
            ["podman", sub, *policy, *rest], env=self.env, capture_output=True, timeout=120
        )
        if proc.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} exited {proc.returncode}:\n{proc.stderr!r}")
        return proc.stdout.decode()


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
