"""Parsing and checking manifests: what a manifest is, and what it points at."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest, InvalidDigest

#: Largest manifest accepted, as distribution and zot do.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024


class InvalidManifest(ValueError):
    """The bytes are not a manifest this registry accepts."""


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content: the fields of an OCI descriptor the registry acts on."""

    media_type: str
    digest: Digest
    size: int
    urls: tuple[str, ...] = ()
    platform: dict[str, Any] | None = None

    @property
    def foreign(self) -> bool:
        """True for layers served from ``urls`` elsewhere, never pushed to a registry."""
        return self.media_type in mt.FOREIGN_LAYER_TYPES and bool(self.urls)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A parsed manifest or index, reduced to what storage and the API need."""

    media_type: str
    blobs: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidManifest(f"{where} is not a descriptor object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise InvalidManifest(f"{where}.mediaType is missing")
    if not isinstance(digest, str):
        raise InvalidManifest(f"{where}.digest is missing")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidManifest(f"{where}.size must be a non-negative integer")
    try:
        parsed = Digest.parse(digest)
    except InvalidDigest as exc:
        raise InvalidManifest(f"{where}.digest: {exc}") from exc
    urls = raw.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise InvalidManifest(f"{where}.urls must be a list of strings")
    platform = raw.get("platform")
    return Descriptor(
        media_type,
        parsed,
        size,
        tuple(urls),
        platform if isinstance(platform, dict) else None,
    )


def _descriptors(doc: dict[str, Any], key: str, required: bool) -> list[Descriptor]:
    raw = doc.get(key)
    if raw is None and not required:
        return []
    if not isinstance(raw, list):
        raise InvalidManifest(f"{key} must be a list")
    return [_descriptor(item, f"{key}[{i}]") for i, item in enumerate(raw)]


def infer_media_type(doc: dict[str, Any]) -> str | None:
    """The media type a manifest without ``mediaType`` must have, from its shape."""
    if "manifests" in doc:
        return mt.OCI_INDEX
    if "config" in doc or "layers" in doc:
        return mt.OCI_MANIFEST
    return None


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Parse ``body`` as sent with ``content_type``; raise InvalidManifest when unfit.

    The declared ``mediaType`` must agree with ``Content-Type`` (the spec requires it, and a
    mismatch would make clients read the manifest as the wrong kind).
    """
    if len(body) > MAX_MANIFEST_BYTES:
        raise InvalidManifest("manifest is larger than 4 MiB")
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidManifest(f"manifest is not valid JSON: {exc}") from exc
    except RecursionError:
        raise InvalidManifest("manifest JSON is nested too deeply") from None
    if not isinstance(doc, dict):
        raise InvalidManifest("manifest is not a JSON object")
    if doc.get("schemaVersion") != 2:
        raise InvalidManifest("schemaVersion must be 2")
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise InvalidManifest("mediaType must be a string")
    content_type = (content_type or "").split(";")[0].strip() or None
    if declared and content_type and declared != content_type:
        raise InvalidManifest(
            f"mediaType {declared!r} does not match Content-Type {content_type!r}"
        )
    media_type = declared or content_type or infer_media_type(doc)
    if media_type not in mt.MANIFEST_TYPES:
        raise InvalidManifest(f"unsupported manifest media type {media_type!r}")

    subject = _descriptor(doc["subject"], "subject") if doc.get("subject") is not None else None
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise InvalidManifest("artifactType must be a string")
    annotations = doc.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
    ):
        raise InvalidManifest("annotations must map strings to strings")

    if media_type in mt.INDEX_TYPES:
        return Manifest(
            media_type,
            manifests=tuple(_descriptors(doc, "manifests", required=True)),
            subject=subject,
            artifact_type=artifact_type,
            annotations=annotations,
        )
    config = _descriptor(doc.get("config"), "config")
    layers = _descriptors(doc, "layers", required=media_type == mt.DOCKER_MANIFEST)
    return Manifest(
        media_type,
        blobs=(config, *layers),
        subject=subject,
        artifact_type=artifact_type or config.media_type,
        annotations=annotations,
    )
