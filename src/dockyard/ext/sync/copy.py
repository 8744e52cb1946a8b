"""Copying manifests from an upstream into the store, byte for byte, digest checked.

Both the on-demand fetcher and periodic sync store manifests here. Nothing from the
upstream is trusted: the body is capped at 4 MiB by the client, it must hash to the digest
asked for (or that the upstream announced), it must parse as a manifest, and child
descriptors are digests parsed by the same code that checks pushes. The manifest goes
through the store's normal ``put``, so it lands exactly as a push would put it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from dockyard.ext.sync.upstream import Fetched, Upstream, UpstreamError
from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.manifest import InvalidManifest, Manifest, parse_manifest
from dockyard.storage.errors import StorageError
from dockyard.storage.store import RootServices

log = logging.getLogger("dockyard.sync")

#: An index of indexes of manifests is as deep as anyone nests; deeper is refused.
MAX_DEPTH = 3


#: Called with a manifest before it is stored (periodic sync copies its blobs there).
BeforePut = Callable[[Manifest], Awaitable[None]]


class Refused(Exception):
    """The upstream's content is not what it claims to be; nothing was stored."""


@dataclass
class Copied:
    """What a copy stored: the top manifest, every manifest stored on the way."""

    digest: str
    manifest: Manifest
    stored: list[str] = field(default_factory=list)


def verify(fetched: Fetched, reference: str) -> tuple[Digest, Manifest, str | None]:
    """The digest and parsed form of an upstream manifest; Refused when it does not check.

    For a digest reference the body must hash to it; for a tag, to the digest the upstream
    announced in ``Docker-Content-Digest`` (when it sent one).
    """
    expected: Digest | None = None
    try:
        if ":" in reference:
            expected = Digest.parse(reference)
        elif fetched.digest:
            expected = Digest.parse(fetched.digest)
    except InvalidDigest as exc:
        raise Refused(f"upstream digest is malformed: {exc}") from exc
    digest = Digest.of(fetched.body, expected.algorithm if expected else "sha256")
    if expected is not None and digest != expected:
        raise Refused(f"manifest bytes hash to {digest}, not {expected}")
    content_type = fetched.media_type
    try:
        manifest = parse_manifest(fetched.body, content_type)
    except InvalidManifest:
        content_type = None  # some registries label manifests loosely; trust the body
        try:
            manifest = parse_manifest(fetched.body, None)
        except InvalidManifest as exc:
            raise Refused(f"not a manifest: {exc}") from exc
    return digest, manifest, content_type or manifest.media_type


async def copy_manifest(
    upstream: Upstream,
    upstream_name: str,
    svc: RootServices,
    repo: str,
    reference: str,
    fetched: Fetched,
    before_put: BeforePut | None = None,
    depth: int = 0,
) -> Copied:
    """Store an upstream manifest under ``reference`` in ``repo``; an index's children first.

    ``before_put`` is awaited with each manifest before it is stored: periodic sync copies
    the manifest's blobs there, and the store then checks they are all present. Without
    it (on demand) blobs come later. Raises Refused, UpstreamError or a StorageError.
    """
    digest, manifest, media_type = verify(fetched, reference)
    copied = Copied(str(digest), manifest)
    for child in manifest.manifests:
        if svc.root.files.stat(repo, child.digest) is not None:
            continue
        if depth >= MAX_DEPTH:
            raise Refused(f"manifest {digest} nests deeper than {MAX_DEPTH} levels")
        sub = await upstream.manifest(upstream_name, str(child.digest))
        if sub is None:
            raise Refused(f"index {digest} lists {child.digest}, which the upstream lacks")
        if len(sub.body) != child.size:
            raise Refused(f"{child.digest} has {len(sub.body)} bytes, the index says {child.size}")
        inner = await copy_manifest(
            upstream, upstream_name, svc, repo, str(child.digest), sub, before_put, depth + 1
        )
        copied.stored += inner.stored
    if before_put is not None:
        await before_put(manifest)
    try:
        await svc.manifests.put(
            repo, reference, fetched.body, media_type, require_blobs=before_put is not None
        )
    except StorageError as exc:
        raise Refused(f"{repo}:{reference}: {exc.message}") from exc
    copied.stored.append(str(digest))
    return copied


async def first_manifest(
    sources: list[tuple[Upstream, str]], reference: str, method: str = "GET"
) -> tuple[Upstream, str, Fetched] | None:
    """The manifest from the first upstream that has it (URLs in order); None if none does."""
    for upstream, name in sources:
        try:
            fetched = await upstream.manifest(name, reference, method)
        except UpstreamError as exc:
            log.warning("sync: %s", exc)
            continue
        if fetched is not None:
            return upstream, name, fetched
    return None
