"""Shared pieces of the benchmark scripts: servers on free ports, layouts made on disk."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_dockyard(config: dict[str, object], workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """Serve ``config`` on a free loopback port; return the process and base URL."""
    port = free_port()
    config = {**config, "http": {"address": "127.0.0.1", "port": port}, "log": {"level": "warn"}}
    path = workdir / f"config-{port}.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", str(path)])
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> float:
    """Seconds until ``GET /v2/`` answers 200."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            if httpx.get(f"{url}/v2/", timeout=1).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            time.sleep(0.01)
    raise RuntimeError("server not ready")


def write_blob(repo_dir: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    path = repo_dir / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {
        "mediaType": "application/octet-stream",
        "digest": f"sha256:{digest}",
        "size": len(data),
    }


def write_image(repo_dir: Path, i: int, tag: str | None) -> dict[str, object]:
    """One image (config, one layer, manifest) in ``repo_dir``; its index entry."""
    config = write_blob(repo_dir, json.dumps({"i": i, "r": os.urandom(8).hex()}).encode())
    config["mediaType"] = "application/vnd.oci.image.config.v1+json"
    layer = write_blob(repo_dir, os.urandom(64))
    manifest = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}
    ).encode()
    desc = write_blob(repo_dir, manifest)
    desc["mediaType"] = OCI_MANIFEST
    if tag is not None:
        desc["annotations"] = {"org.opencontainers.image.ref.name": tag}
    return desc


def write_repo(
    repo_dir: Path, images: int, tag_prefix: str | None = "t", tags: tuple[str, ...] = ()
) -> None:
    """An OCI layout with ``images`` manifests, each with a config and one layer.

    They are tagged ``<tag_prefix><i>``, or untagged when ``tag_prefix`` is None; each of
    ``tags`` adds one more image under that tag.
    """
    repo_dir.mkdir(parents=True, exist_ok=True)
    (repo_dir / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    entries = [
        write_image(repo_dir, i, None if tag_prefix is None else f"{tag_prefix}{i}")
        for i in range(images)
    ]
    entries += [write_image(repo_dir, images + n, tag) for n, tag in enumerate(tags)]
    index = {"schemaVersion": 2, "manifests": entries}
    (repo_dir / "index.json").write_text(json.dumps(index))


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]
