"""One repository's OCI image layout: its paths and its ``index.json``.

``index.json`` holds one descriptor per tag (annotated with
``org.opencontainers.image.ref.name``) and one untagged descriptor for each manifest pushed
without a tag, so it lists every manifest of the repository: it is both the tag store and
the root set for garbage collection.
"""

from __future__ import annotations

import codecs
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from dockyard.oci import mediatypes as mt
from dockyard.oci.digest import Digest
from dockyard.oci.manifest import MAX_MANIFEST_BYTES, Manifest, parse_manifest
from dockyard.storage.backend import StorageBackend
from dockyard.storage.changes import ChangeCounter
from dockyard.storage.coordination import Changes
from dockyard.storage.errors import IndexUnreadable
from dockyard.storage.paths import blob_path, blobs_dir, index_path, oci_layout_path


def read_manifest(repo_dir: Path, digest: str, backend: StorageBackend) -> Manifest | None:
    """Parse a stored manifest, or None when it is absent or not a manifest."""
    try:
        path = blob_path(repo_dir, Digest.parse(digest))
        return parse_manifest(backend.read_bytes(path, MAX_MANIFEST_BYTES), None)
    except (ValueError, OSError):
        return None


def index_stamp(backend: StorageBackend, repo_dir: Path) -> tuple[int, int, int] | None:
    """(identity, size, mtime) of ``index.json``: changes with every write."""
    st = backend.stat(index_path(repo_dir))
    return None if st is None else (st.st_ino, st.st_size, st.st_mtime_ns)


@dataclass
class RepoIndex:
    """The parsed ``index.json`` of one repository, with lookups derived from it."""

    manifests: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    _tags: dict[str, dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    _digests: dict[str, dict[str, Any]] | None = field(default=None, repr=False, compare=False)
    _sorted: list[str] | None = field(default=None, repr=False, compare=False)
    #: Views that callers derive from this version of the index (an encoded tags list):
    #: the index is never mutated in place once cached, so they stay valid with it.
    memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def copy(self) -> RepoIndex:
        """A copy to change; the cached index handed to readers is never mutated."""
        return RepoIndex(list(self.manifests), dict(self.extra))

    @classmethod
    def load(cls, data: bytes) -> RepoIndex:
        """Parse ``index.json``; ValueError unless it is an index whose entries have digests.

        Nothing is guessed: an index that cannot be read is not an empty index, or GC
        would take every blob for an orphan.
        """
        # A byte order mark from a hand edit is allowed, as the standard library allows
        # it; orjson.JSONDecodeError is a ValueError.
        doc = orjson.loads(data.removeprefix(codecs.BOM_UTF8))
        manifests = doc.get("manifests") if isinstance(doc, dict) else None
        if not isinstance(manifests, list) or not all(
            isinstance(m, dict) and isinstance(m.get("digest"), str) for m in manifests
        ):
            raise ValueError("not an OCI image index with a manifests list")
        extra = {k: v for k, v in doc.items() if k != "manifests"}
        return cls(list(manifests), extra)

    def dump(self) -> bytes:
        """The file's bytes, indented for people who read a layout by hand.

        orjson, not the standard library: ``json.dumps`` with ``indent`` takes its pure
        Python encoder, 46 ms for a 20,000-manifest index, with the GIL held from the
        event loop for most of it (one tag pushed or deleted in a large repository
        stalled every other repository's requests); orjson writes the same text in
        under a millisecond.
        """
        doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, **self.extra}
        doc["manifests"] = self.manifests
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2)

    @staticmethod
    def tag_of(desc: dict[str, Any]) -> str | None:
        annotations = desc.get("annotations") or {}
        tag = annotations.get(mt.REF_NAME_ANNOTATION)
        return tag if isinstance(tag, str) else None

    def tags(self) -> dict[str, dict[str, Any]]:
        """Tag -> descriptor; the last entry wins if a hand-made layout repeats a tag."""
        if self._tags is None:
            self._tags = {t: d for d in self.manifests if (t := self.tag_of(d)) is not None}
        return self._tags

    def sorted_tags(self) -> list[str]:
        """Tags in lexical order, computed once per version of the index."""
        if self._sorted is None:
            self._sorted = sorted(self.tags())
        return self._sorted

    def prepare(self) -> RepoIndex:
        """Build the look-ups ahead (in a thread): on a 20,000-entry index each is a
        Python pass of milliseconds that should not fall on the event loop."""
        self.tags()
        self.by_digest("")
        return self

    def by_digest(self, digest: str) -> dict[str, Any] | None:
        if self._digests is None:
            self._digests = {d["digest"]: d for d in reversed(self.manifests)}
        return self._digests.get(digest)

    def set_tag(self, tag: str, desc: dict[str, Any]) -> str | None:
        """Point ``tag`` at ``desc``; return the digest the tag pointed at before, if any."""
        previous = self.tags().get(tag)
        self._tags = self._digests = self._sorted = None
        self.manifests = [d for d in self.manifests if self.tag_of(d) != tag]
        annotations = {**(desc.get("annotations") or {}), mt.REF_NAME_ANNOTATION: tag}
        self._tags = self._digests = self._sorted = None
        self.manifests.append({**desc, "annotations": annotations})
        self._drop_untagged_duplicate(desc["digest"])
        if previous is not None and previous.get("digest") != desc["digest"]:
            self.ensure_listed(previous)
            return str(previous["digest"])
        return None

    def ensure_listed(self, desc: dict[str, Any]) -> None:
        """Keep a manifest pullable by digest: add an untagged entry if nothing lists it."""
        if self.by_digest(desc["digest"]) is None:
            annotations = {
                k: v
                for k, v in (desc.get("annotations") or {}).items()
                if k != mt.REF_NAME_ANNOTATION
            }
            entry = {k: v for k, v in desc.items() if k != "annotations"}
            if annotations:
                entry["annotations"] = annotations
            self._tags = self._digests = self._sorted = None
            self.manifests.append(entry)

    def _drop_untagged_duplicate(self, digest: str) -> None:
        tagged = any(d["digest"] == digest and self.tag_of(d) for d in self.manifests)
        if tagged:
            self._tags = self._digests = self._sorted = None
        self.manifests = [d for d in self.manifests if d.get("digest") != digest or self.tag_of(d)]

    def remove_tag(self, tag: str) -> dict[str, Any] | None:
        desc = self.tags().get(tag)
        if desc is None:
            return None
        self._tags = self._digests = self._sorted = None
        self.manifests = [d for d in self.manifests if self.tag_of(d) != tag]
        self.ensure_listed(desc)
        return desc

    def remove_digest(self, digest: str) -> list[str]:
        """Drop every entry of ``digest``; return the tags that pointed at it."""
        tags = [t for d in self.manifests if d.get("digest") == digest and (t := self.tag_of(d))]
        self._tags = self._digests = self._sorted = None
        self.manifests = [d for d in self.manifests if d.get("digest") != digest]
        return tags


@dataclass
class _Cached:
    stamp: tuple[int, int, int]
    index: RepoIndex
    checked: float
    #: The root's change counter when the stamp was checked (see ``storage.changes``).
    seen: bytes


#: How long a cached index is trusted before its file is stat'ed again. Writes through
#: this process drop the entry at once; this only bounds how late another process's
#: change (a hand edit, ``dockyard gc``) is seen, and saves a stat per manifest GET.
REVALIDATE_SECONDS = 0.05


class LayoutIO:
    """Reads and writes ``index.json`` files, caching each parse until the file changes.

    The cache key is the file's (inode, size, mtime): every write is a rename, which gives
    a new inode, so a reader always sees a complete index. A write by another worker
    process bumps the root's change counter, so the next read of any worker stats the file
    again; a change by a process that does not (``dockyard gc``, a hand edit) is picked up
    within ``REVALIDATE_SECONDS``.
    """

    def __init__(self, backend: StorageBackend, changes: Changes | None = None) -> None:
        self.backend = backend
        self.changes: Changes = changes or ChangeCounter()
        #: Keyed by the repository folder (``StorageRoot.repo_dir`` hands out the same
        #: Path object each time, whose hash is computed once).
        self._cache: dict[Path, _Cached] = {}

    def cached(self, repo_dir: Path) -> RepoIndex | None:
        """The cached parse while it is current (at most a stat), else None: read it then.

        For the event loop, which must not parse a large index: 20,000 manifests are
        megabytes of JSON, tens of milliseconds of everyone's time.
        """
        return self._current(repo_dir, parse=False)

    def read(self, repo_dir: Path) -> RepoIndex | None:
        """The repository's index, or None when it does not exist. Do not mutate it: copy."""
        return self._current(repo_dir, parse=True)

    def _current(self, repo_dir: Path, parse: bool) -> RepoIndex | None:
        now = time.monotonic()
        cached = self._cache.get(repo_dir)
        seen = self.changes.seen()  # before the stat: a change after it is seen next time
        if cached is not None and now - cached.checked < REVALIDATE_SECONDS and cached.seen == seen:
            return cached.index
        stamp = index_stamp(self.backend, repo_dir)
        if stamp is None:
            self._cache.pop(repo_dir, None)
            return None
        if cached is not None and cached.stamp == stamp:
            cached.checked, cached.seen = now, seen
        elif not parse:
            return None
        else:
            path = index_path(repo_dir)
            try:
                index = RepoIndex.load(self.backend.read_bytes(path))
                cached = _Cached(stamp, index, now, seen)
            except (ValueError, OSError) as exc:
                raise IndexUnreadable(
                    f"{path.parent.name}/index.json cannot be read ({exc}); repair or restore it",
                    {"path": str(path.relative_to(path.parent.parent))},
                ) from exc
            self._cache[repo_dir] = cached
        return cached.index

    def write(self, repo_dir: Path, index: RepoIndex) -> None:
        self.backend.write_atomic(index_path(repo_dir), index.dump())
        self.forget(repo_dir)

    def forget(self, repo_dir: Path) -> None:
        """Drop the cached parse and tell the other workers: the file was rewritten (here,
        or by GC's worker)."""
        self._cache.pop(repo_dir, None)
        self.changes.bump()

    def init(self, repo_dir: Path) -> bool:
        """Create an empty layout if none is there; True when it was created."""
        backend = self.backend
        if backend.exists(index_path(repo_dir)):
            return False
        backend.make_dirs(blobs_dir(repo_dir))
        layout = oci_layout_path(repo_dir)
        if not backend.exists(layout):
            version = {"imageLayoutVersion": mt.OCI_LAYOUT_VERSION}
            backend.write_atomic(layout, json.dumps(version).encode())
        self.write(repo_dir, RepoIndex())
        return True
