"""The small OCI image manifests and configs the setup and image workloads push.

Plain JSON built here rather than through ``dockyard.oci``: the benchmark is a client, and
must send what any client would, whatever the server's own models accept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config(label: str, layers: int) -> bytes:
    """A minimal image config; ``label`` makes it (and so the manifest) unique."""
    body = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"dockyard.bench": label}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{i:064x}" for i in range(layers)]},
    }
    return json.dumps(body, separators=(",", ":")).encode()


def image_manifest(
    config: Descriptor, layers: list[Descriptor], annotations: dict[str, str] | None = None
) -> bytes:
    body: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        body["annotations"] = annotations
    return json.dumps(body, separators=(",", ":")).encode()
