"""What the search index remembers of a repository: plain frozen records, no I/O.

Built once per manifest from its bytes and its config (see :mod:`.repo_reader`), then shared by
every query. A repository record is replaced whole when the repository changes, never
mutated, so a query running in a thread reads a consistent view without locks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Artifact types of signatures (cosign, notation): a referrer of one of these signs.
SIGNATURE_TYPES = {
    "application/vnd.dev.cosign.artifact.sig.v1+json": "cosign",
    "application/vnd.cncf.notary.signature": "notation",
}


@dataclass(frozen=True, slots=True)
class Layer:
    digest: str
    size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created: str | None
    created_by: str | None
    author: str | None
    comment: str | None
    empty_layer: bool


@dataclass(frozen=True)
class ImageMeta:
    """One image (or artifact) manifest and what its config says."""

    digest: str
    media_type: str
    manifest_size: int
    config_digest: str
    config_media_type: str
    config_size: int
    artifact_type: str | None
    os: str
    arch: str
    created: str | None
    layers: tuple[Layer, ...]
    history: tuple[HistoryEntry, ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    subject: str | None
    #: When the manifest file was written (its mtime): the push time.
    pushed: float

    @property
    def size(self) -> int:
        return self.manifest_size + self.config_size + sum(layer.size for layer in self.layers)

    def blobs(self) -> set[str]:
        return {self.digest, self.config_digest, *(layer.digest for layer in self.layers)}


@dataclass(frozen=True)
class IndexMeta:
    """An image index (multi-platform image) and the manifests it lists that are present."""

    digest: str
    media_type: str
    manifest_size: int
    artifact_type: str | None
    annotations: dict[str, str]
    subject: str | None
    children: tuple[ImageMeta, ...]
    pushed: float

    @property
    def size(self) -> int:
        sizes = {self.digest: self.manifest_size}
        for child in self.children:
            sizes[child.digest] = child.manifest_size
            sizes[child.config_digest] = child.config_size
            sizes.update((layer.digest, layer.size) for layer in child.layers)
        return sum(sizes.values())

    def blobs(self) -> set[str]:
        found = {self.digest}
        for child in self.children:
            found |= child.blobs()
        return found


Meta = ImageMeta | IndexMeta


@dataclass(frozen=True, slots=True)
class ReferrerMeta:
    digest: str
    media_type: str
    artifact_type: str | None
    size: int
    annotations: dict[str, str]


@dataclass(frozen=True)
class RepoMeta:
    """One repository as queries see it."""

    name: str
    #: Tag -> manifest digest.
    tags: dict[str, str]
    #: Every manifest ``index.json`` lists, tagged or not, by digest.
    manifests: dict[str, Meta]
    #: Subject digest -> the manifests of this repository that refer to it.
    referrers: dict[str, tuple[ReferrerMeta, ...]]
    #: Every digest (manifests, configs, layers) the repository's images use.
    digests: frozenset[str] = field(default_factory=frozenset)
    size: int = 0
    #: The latest push of a tagged manifest (epoch seconds; 0 when nothing is tagged).
    last_pushed: float = 0.0

    def image(self, tag: str) -> Meta | None:
        digest = self.tags.get(tag)
        return None if digest is None else self.manifests.get(digest)

    def signed(self, digest: str) -> list[str]:
        """The signing tools of the signatures that refer to ``digest`` (cosign, notation)."""
        tools = [
            SIGNATURE_TYPES[r.artifact_type]
            for r in self.referrers.get(digest, ())
            if r.artifact_type in SIGNATURE_TYPES
        ]
        # cosign's tag scheme, for signatures pushed without the referrers API.
        if digest.replace(":", "-", 1) + ".sig" in self.tags:
            tools.append("cosign")
        return tools

    def newest_tag(self) -> str | None:
        """The tag whose manifest was pushed last (ties: the greatest name)."""
        best: tuple[float, str] | None = None
        for tag, digest in self.tags.items():
            meta = self.manifests.get(digest)
            key = (meta.pushed if meta is not None else 0.0, tag)
            if best is None or key > best:
                best = key
        return None if best is None else best[1]


def platforms(meta: Meta) -> list[tuple[str, str]]:
    images = meta.children if isinstance(meta, IndexMeta) else (meta,)
    return [(m.os, m.arch) for m in images if m.os or m.arch]


def str_dict(value: Any) -> dict[str, str]:
    """A string map out of untrusted JSON (annotations, labels); anything else is empty."""
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}
