"""A single-layer OCI image layout of a given size, written once and reused by real clients.

The layer is an uncompressed tar holding one file of random bytes, so no client or server
can compress or deduplicate it, and its diff_id is its digest (a valid image for any
client that checks). Making 1 GiB costs seconds of random generation and hashing, so the
layout is kept in a folder named for its size and reused while its marker file says it is
complete: nothing half-written is ever taken for an image.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from dockyard.bench.stats import MiB

TAG = "bench"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: Written last: a folder without it is an interrupted build, made again.
MARKER = "dockyard-bench.json"


@dataclass(frozen=True)
class LayerImage:
    """An OCI layout on disk: its folder, tag and the digests a cleanup deletes."""

    layout: Path
    size: int
    manifest_digest: str
    layer_digest: str
    config_digest: str

    @property
    def blob_digests(self) -> list[str]:
        return [self.layer_digest, self.config_digest]


def _blob_file(layout: Path, digest: str) -> Path:
    algorithm, hexdigest = digest.split(":", 1)
    return layout / "blobs" / algorithm / hexdigest


class _HashingWriter:
    """A file object that hashes what tarfile writes through it."""

    def __init__(self, path: Path) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()


class _RandomReader:
    """``size`` random bytes, read in whatever pieces tarfile asks for."""

    def __init__(self, size: int) -> None:
        self.left = size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        self.left -= n
        return os.urandom(n)


def _write_blob(layout: Path, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _blob_file(layout, digest).write_bytes(data)
    return digest


def _build(layout: Path, size_mib: int) -> LayerImage:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    partial = blobs / "layer.partial"
    out = _HashingWriter(partial)
    try:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            info = tarfile.TarInfo("random.bin")
            info.size = size_mib * MiB
            info.mode = 0o644
            tar.addfile(info, _RandomReader(info.size))
    finally:
        out.close()
    layer = "sha256:" + out.hasher.hexdigest()
    partial.rename(_blob_file(layout, layer))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer]},
            "config": {},
        }
    ).encode()
    config_digest = _write_blob(layout, config)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer, "size": out.size}],
        }
    ).encode()
    manifest_digest = _write_blob(layout, manifest)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": MANIFEST_TYPE,
                "digest": manifest_digest,
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": TAG},
            }
        ],
    }
    (layout / "index.json").write_text(json.dumps(index))
    image = LayerImage(layout, out.size, manifest_digest, layer, config_digest)
    marker = {
        "size": out.size,
        "manifest": manifest_digest,
        "layer": layer,
        "config": config_digest,
    }
    (layout / MARKER).write_text(json.dumps(marker))
    return image


def layer_image(cache: Path, size_mib: int) -> LayerImage:
    """The image with one layer of ``size_mib`` MiB of random file content under ``cache``,
    made now unless a complete one is already there."""
    layout = cache / f"layer-{size_mib}m"
    marker = layout / MARKER
    if marker.is_file():
        doc = json.loads(marker.read_text())
        image = LayerImage(layout, doc["size"], doc["manifest"], doc["layer"], doc["config"])
        if all(_blob_file(layout, d).is_file() for d in [*image.blob_digests, doc["manifest"]]):
            return image
    return _build(layout, size_mib)
