"""Reads one repository from disk into a :class:`RepoMeta`: run in a worker thread.

Only the repository's ``index.json``, its manifests and their configs are read, never a
layer. Manifests already known from the previous record are reused, so a push costs the
parse of ``index.json`` and of the new manifest, not of the whole repository.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.manifest import MAX_MANIFEST_BYTES
from dockyard.storage.layout import RepoIndex
from dockyard.storage.paths import index_path
from dockyard.storage.root import StorageRoot

from .records import (
    HistoryEntry,
    ImageMeta,
    IndexMeta,
    Layer,
    Meta,
    ReferrerMeta,
    RepoMeta,
    str_dict,
)

log = logging.getLogger("dockyard.search")

#: Configs are small JSON documents; anything bigger is not parsed for search.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _read(root: StorageRoot, repo: str, digest: str, limit: int) -> tuple[bytes, float] | None:
    try:
        parsed = Digest.parse(digest)
    except InvalidDigest:
        return None
    body = root.files.read_bytes(repo, parsed, limit)
    st = root.files.stat(repo, parsed)
    if body is None or st is None:
        return None
    return body, st.st_mtime


def _json(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _size(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _digest_of(desc: Any) -> str | None:
    return _text(desc.get("digest")) if isinstance(desc, dict) else None


def _history(config: dict[str, Any]) -> tuple[HistoryEntry, ...]:
    raw = config.get("history")
    if not isinstance(raw, list):
        return ()
    return tuple(
        HistoryEntry(
            _text(h.get("created")),
            _text(h.get("created_by")),
            _text(h.get("author")),
            _text(h.get("comment")),
            h.get("empty_layer") is True,
        )
        for h in raw
        if isinstance(h, dict)
    )


def _image(
    root: StorageRoot, repo: str, digest: str, doc: dict[str, Any], size: int, pushed: float
) -> ImageMeta:
    config_desc = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    assert isinstance(config_desc, dict)
    config_digest = _digest_of(config_desc) or ""
    config: dict[str, Any] = {}
    if config_digest:
        found = _read(root, repo, config_digest, MAX_CONFIG_BYTES)
        if found is not None:
            config = _json(found[0])
    layers_raw = doc.get("layers")
    layers = tuple(
        Layer(d, _size(item.get("size")), _text(item.get("mediaType")) or "")
        for item in (layers_raw if isinstance(layers_raw, list) else [])
        if isinstance(item, dict) and (d := _digest_of(item))
    )
    inner = config.get("config") if isinstance(config.get("config"), dict) else {}
    assert isinstance(inner, dict)
    config_type = _text(config_desc.get("mediaType")) or ""
    return ImageMeta(
        digest=digest,
        media_type=_text(doc.get("mediaType")) or mt.OCI_MANIFEST,
        manifest_size=size,
        config_digest=config_digest,
        config_media_type=config_type,
        config_size=_size(config_desc.get("size")),
        artifact_type=_text(doc.get("artifactType")) or config_type or None,
        os=_text(config.get("os")) or "",
        arch=_text(config.get("architecture")) or "",
        created=_text(config.get("created")),
        layers=layers,
        history=_history(config),
        labels=str_dict(inner.get("Labels")),
        annotations=str_dict(doc.get("annotations")),
        subject=_digest_of(doc.get("subject")),
        pushed=pushed,
    )


def load_meta(root: StorageRoot, repo: str, digest: str) -> Meta | None:
    """Parse a stored manifest (and its config, or an index's children); None if unreadable."""
    found = _read(root, repo, digest, MAX_MANIFEST_BYTES)
    if found is None:
        return None
    body, pushed = found
    doc = _json(body)
    if not doc:
        return None
    if isinstance(doc.get("manifests"), list):
        children = []
        for desc in doc["manifests"]:
            child_digest = _digest_of(desc)
            child = load_meta(root, repo, child_digest) if child_digest else None
            if isinstance(child, ImageMeta):
                platform = desc.get("platform") if isinstance(desc, dict) else None
                if isinstance(platform, dict) and not (child.os or child.arch):
                    child = _with_platform(child, platform)
                children.append(child)
        return IndexMeta(
            digest=digest,
            media_type=_text(doc.get("mediaType")) or mt.OCI_INDEX,
            manifest_size=len(body),
            artifact_type=_text(doc.get("artifactType")),
            annotations=str_dict(doc.get("annotations")),
            subject=_digest_of(doc.get("subject")),
            children=tuple(children),
            pushed=pushed,
        )
    return _image(root, repo, digest, doc, len(body), pushed)


def _with_platform(child: ImageMeta, platform: dict[str, Any]) -> ImageMeta:
    from dataclasses import replace

    return replace(
        child,
        os=_text(platform.get("os")) or "",
        arch=_text(platform.get("architecture")) or "",
    )


def load_repo(root: StorageRoot, repo: str, previous: RepoMeta | None) -> RepoMeta | None:
    """The repository as it is on disk now; None when it has no readable ``index.json``."""
    try:
        index = RepoIndex.load(root.backend.read_bytes(index_path(root.repo_dir(repo))))
    except (OSError, ValueError) as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("search skips %s: index.json unreadable: %s", repo, exc)
        return None
    known = previous.manifests if previous is not None else {}
    manifests: dict[str, Meta] = {}
    tags: dict[str, str] = {}
    for desc in index.manifests:
        digest = desc["digest"]
        tag = RepoIndex.tag_of(desc)
        if tag is not None:
            tags[tag] = digest
        if digest in manifests:
            continue
        meta = known.get(digest) or load_meta(root, repo, digest)
        if meta is not None:
            manifests[digest] = meta
    return summarise(repo, tags, manifests)


def summarise(repo: str, tags: dict[str, str], manifests: dict[str, Meta]) -> RepoMeta:
    """Derive the referrers map, the digests used, the size and the last push."""
    referrers: dict[str, list[ReferrerMeta]] = {}
    sizes: dict[str, int] = {}
    for meta in manifests.values():
        if meta.subject is not None:
            referrers.setdefault(meta.subject, []).append(
                ReferrerMeta(
                    meta.digest,
                    meta.media_type,
                    meta.artifact_type,
                    meta.manifest_size,
                    meta.annotations,
                )
            )
        images = meta.children if isinstance(meta, IndexMeta) else (meta,)
        sizes[meta.digest] = meta.manifest_size
        for image in images:
            sizes[image.digest] = image.manifest_size
            if image.config_digest:
                sizes[image.config_digest] = image.config_size
            sizes.update((layer.digest, layer.size) for layer in image.layers)
    tagged = [manifests[d].pushed for d in tags.values() if d in manifests]
    return RepoMeta(
        name=repo,
        tags=tags,
        manifests=manifests,
        referrers={k: tuple(v) for k, v in referrers.items()},
        digests=frozenset(sizes),
        size=sum(sizes.values()),
        last_pushed=max(tagged, default=0.0),
    )
