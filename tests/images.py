"""Build OCI image layouts on disk with pure Python, to feed real clients (skopeo, umoci).

Every call draws fresh random content, so digests differ from run to run and no test can
pass on what an earlier run left behind. Blobs are written as the image-spec's layout
asks (``oci-layout``, ``index.json``, ``blobs/sha256/<hex>``); manifests are pretty-printed
JSON on purpose, so a registry that re-serialises instead of keeping the bytes is caught.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "org.opencontainers.image.created"

DEFAULT_PLATFORMS: tuple[tuple[str, str], ...] = (("linux", "amd64"), ("linux", "arm64"))


def sha256_digest(data: bytes) -> str:
    """The OCI digest string (``sha256:<hex>``) of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob_path(layout: Path, digest: str) -> Path:
    """Where a layout keeps the blob with this digest."""
    algorithm, hex_ = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_


def read_blob(layout: Path, digest: str) -> bytes:
    """The bytes of one blob of a layout (raises if it is missing)."""
    return blob_path(layout, digest).read_bytes()


def read_index(layout: Path) -> dict[str, Any]:
    """The parsed ``index.json`` of a layout."""
    return json.loads((layout / "index.json").read_text())  # type: ignore[no-any-return]


def tagged_digest(layout: Path, tag: str) -> str:
    """The digest ``index.json`` names for ``tag`` (KeyError if the tag is absent)."""
    for desc in read_index(layout).get("manifests", []):
        if (desc.get("annotations") or {}).get(REF_NAME) == tag:
            return str(desc["digest"])
    raise KeyError(f"tag {tag!r} not in {layout / 'index.json'}")


@dataclass(frozen=True)
class Descriptor:
    """An OCI content descriptor: what a manifest or index says about one blob."""

    media_type: str
    digest: str
    size: int

    def to_json(self, **extra: Any) -> dict[str, Any]:
        """The descriptor as the JSON object specs write, plus any extra fields."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True)
class Image:
    """One single-platform image written into a layout, and the digests to expect."""

    layout: Path
    tag: str | None
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    diff_ids: tuple[str, ...]
    platform: tuple[str, str]

    @property
    def manifest_digest(self) -> str:
        return self.manifest.digest

    @property
    def layer_digests(self) -> list[str]:
        return [layer.digest for layer in self.layers]

    @property
    def blob_digests(self) -> list[str]:
        """Every blob the image consists of: manifest, config, then layers."""
        return [self.manifest.digest, self.config.digest, *self.layer_digests]

    def blob(self, digest: str) -> bytes:
        """Bytes of one of this image's blobs as written in its source layout."""
        return read_blob(self.layout, digest)


@dataclass(frozen=True)
class MultiArchImage:
    """An image index over several platform images, written into a layout."""

    layout: Path
    tag: str | None
    index: Descriptor
    children: dict[str, Image]
    """Platform as ``os/arch`` -> the child image."""

    @property
    def index_digest(self) -> str:
        return self.index.digest

    @property
    def blob_digests(self) -> list[str]:
        """Every blob reachable from the index, the index itself first."""
        digests = [self.index.digest]
        for child in self.children.values():
            digests += child.blob_digests
        return digests


def init_layout(layout: Path) -> Path:
    """Make ``layout`` an (empty, if new) OCI image layout; keep an existing one as it is."""
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    marker = layout / "oci-layout"
    if not marker.exists():
        marker.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index = layout / "index.json"
    if not index.exists():
        index.write_text(json.dumps({"schemaVersion": 2, "mediaType": INDEX, "manifests": []}))
    return layout


def write_blob(layout: Path, data: bytes, media_type: str) -> Descriptor:
    """Store ``data`` as a blob of ``layout`` and return its descriptor."""
    digest = sha256_digest(data)
    path = blob_path(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return Descriptor(media_type, digest, len(data))


def tag(layout: Path, desc: Descriptor, name: str, **extra: Any) -> None:
    """Point ``name`` at ``desc`` in ``index.json``, replacing an older entry of that name."""
    index = read_index(layout)
    kept = [
        d for d in index.get("manifests", []) if (d.get("annotations") or {}).get(REF_NAME) != name
    ]
    kept.append(desc.to_json(annotations={REF_NAME: name}, **extra))
    index["manifests"] = kept
    tmp = layout / f".index.json.{uuid.uuid4().hex}"
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, layout / "index.json")


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def random_layer(files: int = 3, max_file_size: int = 48 * 1024) -> tuple[bytes, str]:
    """A gzip-compressed tar of random files; returns (compressed bytes, diff_id).

    The diff_id is the digest of the uncompressed tar, as the image config records it.
    """
    raw = io.BytesIO()
    top = f"dockyard-{uuid.uuid4().hex[:12]}"
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(top)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        info.mtime = 1_700_000_000
        tar.addfile(info)
        for i in range(files):
            size = 1024 + int.from_bytes(os.urandom(4), "big") % max_file_size
            content = os.urandom(size)
            info = tarfile.TarInfo(f"{top}/file-{i}.bin")
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(content))
        note = f"made by dockyard tests {uuid.uuid4()}\n".encode()
        info = tarfile.TarInfo(f"{top}/NOTE")
        info.size = len(note)
        info.mode = 0o644
        info.mtime = 1_700_000_000
        tar.addfile(info, io.BytesIO(note))
    uncompressed = raw.getvalue()
    return gzip.compress(uncompressed, mtime=0), sha256_digest(uncompressed)


def _json_bytes(obj: dict[str, Any]) -> bytes:
    # Pretty-printed with a trailing newline: a registry must keep these bytes exactly.
    return (json.dumps(obj, indent=2) + "\n").encode()


def write_image(
    layout: Path, *, layers: int = 3, os_name: str = "linux", arch: str = "amd64"
) -> Image:
    """Write config, ``layers`` gzip tar layers and a manifest into ``layout``; tag nothing."""
    init_layout(layout)
    layer_descs: list[Descriptor] = []
    diff_ids: list[str] = []
    for _ in range(layers):
        data, diff_id = random_layer()
        layer_descs.append(write_blob(layout, data, LAYER_GZIP))
        diff_ids.append(diff_id)
    created = _now()
    config = {
        "created": created,
        "architecture": arch,
        "os": os_name,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "Labels": {"dev.dockyard.test.nonce": uuid.uuid4().hex},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": created, "created_by": f"dockyard tests: layer {i}"} for i in range(layers)
        ],
    }
    config_desc = write_blob(layout, _json_bytes(config), CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": config_desc.to_json(),
        "layers": [d.to_json() for d in layer_descs],
        "annotations": {CREATED: created, "dev.dockyard.test.nonce": uuid.uuid4().hex},
    }
    manifest_desc = write_blob(layout, _json_bytes(manifest), MANIFEST)
    return Image(
        layout=layout,
        tag=None,
        manifest=manifest_desc,
        config=config_desc,
        layers=tuple(layer_descs),
        diff_ids=tuple(diff_ids),
        platform=(os_name, arch),
    )


def build_image(
    layout: Path,
    tag_name: str | None = "latest",
    *,
    layers: int = 3,
    os_name: str = "linux",
    arch: str = "amd64",
) -> Image:
    """A multi-layer image (config + ``layers`` gzip tar layers) in ``layout``, tagged.

    ``layout`` is created if needed; an existing layout gains the image beside what it holds.
    """
    image = write_image(layout, layers=layers, os_name=os_name, arch=arch)
    if tag_name is None:
        return image
    tag(layout, image.manifest, tag_name)
    return Image(
        layout=image.layout,
        tag=tag_name,
        manifest=image.manifest,
        config=image.config,
        layers=image.layers,
        diff_ids=image.diff_ids,
        platform=image.platform,
    )


def build_index(
    layout: Path,
    tag_name: str | None = "latest",
    *,
    platforms: tuple[tuple[str, str], ...] = DEFAULT_PLATFORMS,
    layers: int = 2,
) -> MultiArchImage:
    """A multi-arch image index (default linux/amd64 + linux/arm64) in ``layout``, tagged.

    Only the index is named in ``index.json``; the child manifests are blobs it points at.
    """
    children: dict[str, Image] = {}
    entries: list[dict[str, Any]] = []
    for os_name, arch in platforms:
        child = write_image(layout, layers=layers, os_name=os_name, arch=arch)
        children[f"{os_name}/{arch}"] = child
        entries.append(child.manifest.to_json(platform={"architecture": arch, "os": os_name}))
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": entries,
        "annotations": {CREATED: _now(), "dev.dockyard.test.nonce": uuid.uuid4().hex},
    }
    index_desc = write_blob(layout, _json_bytes(index), INDEX)
    if tag_name is not None:
        tag(layout, index_desc, tag_name)
    return MultiArchImage(layout=layout, tag=tag_name, index=index_desc, children=children)
