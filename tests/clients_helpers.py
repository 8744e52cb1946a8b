"""The real clients the black-box tests drive, each isolated from the machine's config.

``Skopeo`` and ``Podman`` run the Debian binaries with a HOME, auth file, policy and
storage of their own under the test's folder; ``assert_same_image`` and
``assert_same_index`` check that a pulled OCI layout holds exactly what was pushed.
Used by the client, security, operations and mirroring tests alike.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from images import (
    Image,
    MultiArchImage,
    blob_path,
    read_blob,
    sha256_digest,
    tagged_digest,
)


class Skopeo:
    """Runs skopeo isolated from the machine's user config: own HOME, auth file, policy."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.policy = home / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        registries_d = home / "registries.d"
        registries_d.mkdir(exist_ok=True)
        registries_conf = home / "registries.conf"
        registries_conf.write_text("")
        self.global_args = ["--policy", str(self.policy), "--registries.d", str(registries_d)]
        runtime = home / "run"
        runtime.mkdir(exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(runtime),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "REGISTRY_AUTH_FILE": str(home / "auth.json"),
            "CONTAINERS_REGISTRIES_CONF": str(registries_conf),
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run ``skopeo ARGS``; with ``check``, fail the test showing skopeo's stderr."""
        proc = subprocess.run(
            ["skopeo", *self.global_args, *args],
            env=self.env,
            capture_output=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"skopeo {' '.join(args)} exited {proc.returncode}:\n"
                f"{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def push(self, layout: Path, tag: str, dest: str, *, all_images: bool = False) -> None:
        """``skopeo copy oci:LAYOUT:TAG docker://DEST`` over plain HTTP, digests preserved."""
        extra = ["--all"] if all_images else []
        self.run(
            "copy",
            "--quiet",
            "--preserve-digests",
            *extra,
            "--dest-tls-verify=false",
            f"oci:{layout}:{tag}",
            f"docker://{dest}",
        )

    def pull(self, src: str, layout: Path, tag: str, *, all_images: bool = False) -> None:
        """``skopeo copy docker://SRC oci:LAYOUT:TAG`` over plain HTTP, digests preserved."""
        extra = ["--all"] if all_images else []
        self.run(
            "copy",
            "--quiet",
            "--preserve-digests",
            *extra,
            "--src-tls-verify=false",
            f"docker://{src}",
            f"oci:{layout}:{tag}",
        )


def assert_same_image(out: Path, tag: str, image: Image) -> None:
    """``out`` names ``image`` under ``tag``, and holds every blob of it byte for byte."""
    assert tagged_digest(out, tag) == image.manifest_digest
    for digest in image.blob_digests:
        path = blob_path(out, digest)
        assert path.is_file(), f"{digest} missing from {out}"
        data = path.read_bytes()
        assert sha256_digest(data) == digest
        assert data == image.blob(digest)
    manifest = json.loads(read_blob(out, image.manifest_digest))
    assert [layer["digest"] for layer in manifest["layers"]] == image.layer_digests
    config = json.loads(read_blob(out, image.config.digest))
    assert config["rootfs"]["diff_ids"] == list(image.diff_ids)


def assert_same_index(out: Path, tag: str, index: MultiArchImage) -> None:
    """``out`` names the index under ``tag`` and holds every child image, byte for byte."""
    assert tagged_digest(out, tag) == index.index_digest
    assert read_blob(out, index.index_digest) == read_blob(index.layout, index.index_digest)
    pulled = json.loads(read_blob(out, index.index_digest))
    platforms = {
        f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
        for m in pulled["manifests"]
    }
    assert platforms == {p: child.manifest_digest for p, child in index.children.items()}
    for child in index.children.values():
        for digest in child.blob_digests:
            assert read_blob(out, digest) == child.blob(digest), f"{digest} differs"


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
