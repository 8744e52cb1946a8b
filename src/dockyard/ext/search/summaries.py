"""Index records turned into zot's GraphQL objects (dicts keyed by zot's field names).

Values are returned exactly as pushed: no escaping here, that is the renderer's job.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from .records import ImageMeta, IndexMeta, Meta, ReferrerMeta, RepoMeta, platforms

Obj = dict[str, Any]

#: OCI annotation keys zot reads, falling back to the config's labels of the same name.
_PREFIX = "org.opencontainers.image."


def rfc3339(stamp: float) -> str | None:
    if not stamp:
        return None
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def _annotation(meta: Meta, key: str) -> str | None:
    if key in meta.annotations:
        return meta.annotations[key]
    images = meta.children if isinstance(meta, IndexMeta) else (meta,)
    for image in images:
        if key in image.annotations:
            return image.annotations[key]
        if key in image.labels:
            return image.labels[key]
    return None


def referrer(r: ReferrerMeta) -> Obj:
    return {
        "MediaType": r.media_type,
        "ArtifactType": r.artifact_type,
        "Size": r.size,
        "Digest": r.digest,
        "Annotations": [{"Key": k, "Value": v} for k, v in r.annotations.items()],
    }


def _signatures(repo: RepoMeta, digest: str) -> list[Obj]:
    return [{"Tool": tool, "IsTrusted": False, "Author": ""} for tool in repo.signed(digest)]


def manifest_summary(repo: RepoMeta, image: ImageMeta) -> Obj:
    layers = [{"Size": str(layer.size), "Digest": layer.digest} for layer in image.layers]
    return {
        "Digest": image.digest,
        "ConfigDigest": image.config_digest,
        "LastUpdated": image.created or rfc3339(image.pushed),
        "Size": str(image.size),
        "IsSigned": bool(repo.signed(image.digest)),
        "SignatureInfo": _signatures(repo, image.digest),
        "Platform": {"Os": image.os, "Arch": image.arch},
        "DownloadCount": 0,
        "Layers": layers,
        "History": lambda info: _history(image),
        "Vulnerabilities": None,
        "Referrers": [referrer(r) for r in repo.referrers.get(image.digest, ())],
        "ArtifactType": image.artifact_type,
    }


def _history(image: ImageMeta) -> list[Obj]:
    """History entries paired with the layers they made (empty layers have none)."""
    out: list[Obj] = []
    layers = iter(image.layers)
    for h in image.history:
        layer = None if h.empty_layer else next(layers, None)
        out.append(
            {
                "Layer": None
                if layer is None
                else {"Size": str(layer.size), "Digest": layer.digest},
                "HistoryDescription": {
                    "Created": h.created,
                    "CreatedBy": h.created_by,
                    "Author": h.author,
                    "Comment": h.comment,
                    "EmptyLayer": h.empty_layer,
                },
            }
        )
    return out


def image_summary(
    repo: RepoMeta, tag: str | None, meta: Meta, can_delete: Callable[[str], bool]
) -> Obj:
    """Every field but the plain ones is a callable, run only when the query asks for it."""
    images = meta.children if isinstance(meta, IndexMeta) else (meta,)

    def text(key: str) -> Callable[[Any], str | None]:
        return lambda info: _annotation(meta, _PREFIX + key)

    def last_updated(info: Any) -> str | None:
        created = max((i.created for i in images if i.created), default=None)
        return created or rfc3339(meta.pushed)

    return {
        "RepoName": repo.name,
        "Tag": tag,
        "Digest": meta.digest,
        "MediaType": meta.media_type,
        "Manifests": lambda info: [manifest_summary(repo, i) for i in images],
        "Size": lambda info: str(meta.size),
        "DownloadCount": 0,
        "LastPullTimestamp": None,
        "PushTimestamp": lambda info: rfc3339(meta.pushed),
        "PushedBy": None,
        "TaggedTimestamp": lambda info: rfc3339(meta.pushed),
        "LastUpdated": last_updated,
        "Description": text("description"),
        "IsSigned": lambda info: bool(repo.signed(meta.digest)),
        "SignatureInfo": lambda info: _signatures(repo, meta.digest),
        "Licenses": text("licenses"),
        "Labels": None,
        "Title": text("title"),
        "Source": text("source"),
        "Documentation": text("documentation"),
        "Vendor": text("vendor"),
        "Authors": text("authors"),
        "Vulnerabilities": None,
        "Referrers": lambda info: [referrer(r) for r in repo.referrers.get(meta.digest, ())],
        "IsDeletable": lambda info: can_delete(repo.name),
        "ArtifactType": meta.artifact_type,
    }


def repo_summary(repo: RepoMeta, can_delete: Callable[[str], bool], rank: int = 0) -> Obj:
    def newest(info: Any) -> Obj | None:
        tag = repo.newest_tag()
        meta = repo.image(tag) if tag is not None else None
        return None if meta is None else image_summary(repo, tag, meta, can_delete)

    def platform_list(info: Any) -> list[Obj]:
        seen: dict[tuple[str, str], None] = {}
        for digest in repo.tags.values():
            meta = repo.manifests.get(digest)
            if meta is not None:
                seen.update((p, None) for p in platforms(meta))
        return [{"Os": os, "Arch": arch} for os, arch in seen]

    def vendors(info: Any) -> list[str]:
        found = {
            v
            for d in repo.tags.values()
            if (m := repo.manifests.get(d)) is not None
            and (v := _annotation(m, _PREFIX + "vendor"))
        }
        return sorted(found)

    return {
        "Name": repo.name,
        "LastUpdated": lambda info: rfc3339(repo.last_pushed),
        "Size": str(repo.size),
        "Platforms": platform_list,
        "Vendors": vendors,
        "NewestImage": newest,
        "DownloadCount": 0,
        "StarCount": 0,
        "IsBookmarked": False,
        "IsStarred": False,
        "Rank": rank,
    }
