"""Manifests of a repository: resolve by tag or digest, put with checks, delete."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dockyard.oci.digest import Digest, InvalidDigest
from dockyard.oci.manifest import (
    MAX_MANIFEST_BYTES,
    InvalidManifest,
    Manifest,
    infer_media_type,
    parse_manifest,
)
from dockyard.oci.names import validate_tag
from dockyard.storage.errors import (
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    TagMoveDenied,
)
from dockyard.storage.layout import RepoIndex
from dockyard.storage.manifest_cache import ManifestCache
from dockyard.storage.root import StorageRoot

#: Whether this put may move ``tag``, which already points at a manifest (any manifest,
#: even the one being put: as in zot, re-tagging counts as moving). Asked under the
#: repository lock, so the answer holds at the moment of publishing.
MayMoveTag = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as served: its bytes, digest and media type."""

    digest: str
    media_type: str
    body: bytes


@dataclass(frozen=True, slots=True)
class PutResult:
    digest: str
    manifest: Manifest
    #: Digests that a moved tag pointed at before this put (candidates for GC).
    untagged: tuple[str, ...]


def parse_reference(reference: str) -> Digest | str:
    """A manifest reference is a digest when it has a colon, else a tag."""
    if ":" in reference:
        try:
            return Digest.parse(reference)
        except InvalidDigest as exc:
            raise DigestInvalid(str(exc), {"reference": reference}) from exc
    try:
        return validate_tag(reference)
    except ValueError as exc:
        raise ManifestInvalid(str(exc), {"reference": reference}) from exc


def lookup_reference(reference: str) -> Digest | str | None:
    """A reference to look up (GET, HEAD, DELETE): a digest, a tag, or None when it is
    neither and so names no manifest that could exist.

    Such a reference is unknown, not malformed input: the spec answers a manifest that is
    not there with 404 MANIFEST_UNKNOWN, as zot and distribution do for
    ``.INVALID_MANIFEST_NAME`` (what the conformance suite asks for). Only a PUT, which
    would create it, refuses it with 400 (see :func:`parse_reference`).
    """
    try:
        return parse_reference(reference)
    except (DigestInvalid, ManifestInvalid):
        return None


def _media_type_of(body: bytes) -> str | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    if not isinstance(doc, dict):
        return None
    declared = doc.get("mediaType")
    return declared if isinstance(declared, str) else infer_media_type(doc)


class RepoManifests:
    """Manifest operations of one storage root, addressed by repository name."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root
        self.cache = ManifestCache()
        #: Called with a repository whose content may have become unreachable (inline GC).
        self.on_unreferenced: Callable[[str], None] = lambda repo: None

    def _read_verified(self, repo: str, digest: Digest, listed: bool) -> bytes | None:
        """The stored bytes, only if they still hash to ``digest`` (never serve rot).

        The cache is shared by the repositories of the root, so it answers only for a
        digest this repository's index lists; anything else is looked up on disk.
        """
        key = str(digest)
        body = self.cache.get(key) if listed else None
        if body is None:
            body = self.root.files.read_bytes(repo, digest, MAX_MANIFEST_BYTES)
            if body is None or Digest.of(body, digest.algorithm) != digest:
                return None
            self.cache.put(key, body)
        return body

    async def find(self, repo: str, reference: str) -> StoredManifest:
        """:meth:`resolve` for the event loop: a changed index is parsed aside."""
        if self.root.remote:  # a manifest not cached is a GET from the bucket: aside
            return await asyncio.to_thread(self.resolve, repo, reference)
        return self.resolve(repo, reference, await self.root.read_index(repo))

    def resolve(self, repo: str, reference: str, index: RepoIndex | None = None) -> StoredManifest:
        """The manifest under a tag or digest; NameUnknown/ManifestUnknown when absent."""
        if index is None:
            index = self.root.index(repo)
        unknown = ManifestUnknown(
            f"manifest {reference!r} is not in {repo!r}", {"reference": reference}
        )
        ref = lookup_reference(reference)
        if ref is None:
            raise unknown
        if isinstance(ref, str):
            desc = index.tags().get(ref)
            if desc is None:
                raise unknown
            digest = Digest.parse(desc["digest"])
        else:
            digest = ref
            desc = index.by_digest(str(digest))
        body = self._read_verified(repo, digest, listed=desc is not None)
        if body is None:
            raise unknown
        media_type = (desc or {}).get("mediaType") or _media_type_of(body)
        if desc is None and media_type is None:
            raise unknown  # a blob that is not a manifest
        return StoredManifest(str(digest), media_type or "application/octet-stream", body)

    def _check_references(self, repo: str, manifest: Manifest, require_blobs: bool) -> None:
        files = self.root.files
        for desc in manifest.blobs:
            if desc.foreign or not require_blobs:
                continue
            st = files.stat(repo, desc.digest)
            if st is None:
                raise ManifestBlobUnknown(
                    f"blob {desc.digest} is not in {repo!r}", {"digest": str(desc.digest)}
                )
            if st.st_size != desc.size:
                raise ManifestInvalid(
                    f"blob {desc.digest} has {st.st_size} bytes, the manifest says {desc.size}",
                    {"digest": str(desc.digest)},
                )
        for desc in manifest.manifests:
            if files.stat(repo, desc.digest) is None:
                raise ManifestBlobUnknown(
                    f"manifest {desc.digest} is not in {repo!r}", {"digest": str(desc.digest)}
                )

    async def put(
        self,
        repo: str,
        reference: str,
        body: bytes,
        content_type: str | None,
        extra_tags: list[str] = [],  # noqa: B006 - never mutated
        may_move: MayMoveTag | None = None,
        require_blobs: bool = True,
    ) -> PutResult:
        """Check and store a manifest, then point the tags at it, atomically per repository.

        ``may_move`` (None: any tag may move) is asked about each tag that exists when the
        repository lock is held; a no raises TagMoveDenied before anything is stored.
        Deciding earlier would let a tag created meanwhile be moved by whoever was only
        allowed to create it.

        ``require_blobs=False`` is for a mirror's on-demand fetch: the manifest is stored
        before its blobs, which arrive when first asked for (or from the background fill).
        """
        ref = parse_reference(reference)
        tags = [ref] if isinstance(ref, str) else []
        for tag in extra_tags:
            try:
                tags.append(validate_tag(tag))
            except ValueError as exc:
                raise ManifestInvalid(str(exc), {"tag": tag}) from exc
        try:
            manifest = parse_manifest(body, content_type)
        except InvalidManifest as exc:
            raise ManifestInvalid(str(exc)) from exc
        algorithm = ref.algorithm if isinstance(ref, Digest) else "sha256"
        digest = Digest.of(body, algorithm)
        if isinstance(ref, Digest) and ref != digest:
            raise DigestInvalid(f"manifest hashes to {digest}, not {ref}", {"digest": str(ref)})
        desc: dict[str, Any] = {
            "mediaType": manifest.media_type,
            "digest": str(digest),
            "size": len(body),
        }
        async with self.root.locks.hold(repo) as held:
            if may_move is not None:
                await self._refuse_moves(repo, tags, may_move)
            # Checked under the lock GC deletes under, so no referenced blob can vanish
            # between the check and the publish (a stat each: aside on object storage).
            await self.root.off_loop(self._check_references, repo, manifest, require_blobs)
            await asyncio.to_thread(self._store, repo, digest, body)
            index, untagged = await asyncio.to_thread(self._listed, repo, tags, desc)
            await held.fence()
            await asyncio.to_thread(self.root.layout.write, self.root.repo_dir(repo), index)
            self.root.referrers.added(repo, str(digest), len(body), manifest)
            self.root.events.repo_changed(self.root.path, repo)
        if untagged:
            self.on_unreferenced(repo)
        return PutResult(str(digest), manifest, tuple(untagged))

    def _listed(
        self, repo: str, tags: list[str], desc: dict[str, Any]
    ) -> tuple[RepoIndex, list[str]]:
        """The index with ``tags`` pointed at ``desc`` (or it listed untagged), and the
        digests the tags left. In a thread: the copy and the edits go over every entry.
        """
        index = self.root.index(repo).copy()
        untagged = [old for tag in tags if (old := index.set_tag(tag, desc))]
        if not tags:
            index.ensure_listed(desc)
        return index, untagged

    async def _refuse_moves(self, repo: str, tags: list[str], may_move: MayMoveTag) -> None:
        try:
            existing = (await self.root.read_index(repo)).tags()
        except NameUnknown:
            return  # no repository yet: every tag is new
        for tag in tags:
            if tag in existing and not may_move(tag):
                raise TagMoveDenied(
                    "requested access to the resource is denied",
                    {"reason": f"tag {tag!r} exists, and moving it needs update", "tag": tag},
                )

    def _store(self, repo: str, digest: Digest, body: bytes) -> None:
        self.root.ensure_repo(repo)
        self.root.files.put_bytes(repo, digest, body)

    async def delete(self, repo: str, reference: str) -> None:
        """Delete a tag (the manifest stays) or a manifest with every tag pointing at it."""
        await self.root.off_loop(self.root.require, repo)
        unknown = ManifestUnknown(
            f"manifest {reference!r} is not in {repo!r}", {"reference": reference}
        )
        ref = lookup_reference(reference)
        if ref is None:
            raise unknown
        async with self.root.locks.hold(repo) as held:
            index = await asyncio.to_thread(self._unlisted, repo, ref)
            if index is None:
                raise unknown
            # index.json first: a crash in between leaves an unlisted file for GC, never
            # a listed manifest whose bytes are gone.
            await held.fence()
            await asyncio.to_thread(self.root.layout.write, self.root.repo_dir(repo), index)
            if isinstance(ref, Digest):
                self.cache.drop(str(ref))
                await asyncio.to_thread(self.root.files.delete, repo, ref)
                self.root.referrers.removed(repo, str(ref))
            self.root.events.repo_changed(self.root.path, repo)
        self.on_unreferenced(repo)

    def _unlisted(self, repo: str, ref: str | Digest) -> RepoIndex | None:
        """The index without the tag, or without every entry of the digest; None when
        there is nothing to delete. In a thread, as :meth:`_listed`.
        """
        index = self.root.index(repo).copy()
        if isinstance(ref, str):
            if index.remove_tag(ref) is None:
                return None
        else:
            before = len(index.manifests)
            index.remove_digest(str(ref))
            listed = len(index.manifests) < before
            if not listed and self.root.load_manifest(repo, str(ref)) is None:
                return None
        return index

    async def referrers(
        self, repo: str, subject: Digest, artifact_type: str | None
    ) -> list[dict[str, Any]]:
        index = await self.root.read_index(repo)

        def listed() -> list[tuple[str, int]]:
            # Walked only the first time the repository is queried, never per request.
            return [(d["digest"], int(d.get("size", 0))) for d in index.manifests]

        referrers, args = self.root.referrers, (repo, str(subject), listed, artifact_type, index)
        if referrers.current(repo, index):
            return referrers.query(*args)
        # A first query, or one after a change: the map catches up aside (see referrers).
        return await asyncio.to_thread(referrers.query, *args)
