"""Subject -> referrers, per repository, so a referrers query never scans every manifest.

A repository's map is built once, on its first query, from the manifests its
``index.json`` lists; after that every manifest put or delete keeps it current. Another
worker process's puts and deletes show as a new version of the index: the map then
catches up with the difference between the digests it accounted for and those listed
(a set difference; only the new manifests are read), never a rebuild.

Building or catching up a map is proportional to the repository, so it runs in a thread
(see ``ManifestStore.referrers``); the event loop only answers from a map that is
current, and applies single puts and deletes (``added``, ``removed``). A sync in a
thread never contradicts those: a change it misses bumps the index version, so the next
query catches up again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from dockyard.oci.manifest import Manifest

#: How to load and parse a listed manifest while building a repository's map.
Loader = Callable[[str, str], Manifest | None]
#: The (digest, size) of every manifest a repository lists; called only to build its map.
Listed = Callable[[], Iterable[tuple[str, int]]]
#: subject digest -> referrer digest -> the descriptor listed for it.
SubjectMap = dict[str, dict[str, dict[str, Any]]]


def referrer_descriptor(digest: str, size: int, manifest: Manifest) -> dict[str, Any]:
    """The descriptor the referrers API lists for one manifest with a subject."""
    desc: dict[str, Any] = {"mediaType": manifest.media_type, "digest": digest, "size": size}
    if manifest.artifact_type:
        desc["artifactType"] = manifest.artifact_type
    if manifest.annotations:
        desc["annotations"] = manifest.annotations
    return desc


class Referrers:
    """In-memory referrers maps, one per repository."""

    def __init__(self, loader: Loader) -> None:
        self._load = loader
        self._maps: dict[str, SubjectMap] = {}
        #: repo -> referrer digest -> its subject, so a removal touches one entry only.
        self._subject_of: dict[str, dict[str, str]] = {}
        #: repo -> every listed digest the map accounts for (referrer or not).
        self._known: dict[str, set[str]] = {}
        #: repo -> the index version (a parsed ``index.json``) the map was last synced to.
        self._version: dict[str, object] = {}
        #: One sync at a time (they run in threads); the loop never takes it.
        self._syncing = threading.Lock()

    def current(self, repo: str, version: object) -> bool:
        """Whether a query of ``repo`` at ``version`` is answered without a sync."""
        return repo in self._maps and self._version.get(repo) is version

    def _map(self, repo: str, listed: Listed, version: object) -> SubjectMap:
        if self.current(repo, version):
            return self._maps[repo]
        with self._syncing:
            return self._sync(repo, listed, version)

    def _sync(self, repo: str, listed: Listed, version: object) -> SubjectMap:
        maps = self._maps.get(repo)
        if maps is None:
            # The map goes in last: ``added`` and ``removed`` look at it first.
            self._subject_of[repo] = {}
            self._known[repo] = set()
            maps = self._maps[repo] = {}
        elif self._version.get(repo) is version:
            return maps
        current = dict(listed())
        known = self._known[repo]
        for digest in known - current.keys():
            self._remove(repo, digest)
        for digest in current.keys() - known:
            manifest = self._load(repo, digest)
            if manifest is not None:
                self._add(repo, digest, current[digest], manifest)
            known.add(digest)
        self._version[repo] = version
        return maps

    def query(
        self,
        repo: str,
        subject: str,
        listed: Listed,
        artifact_type: str | None,
        version: object = None,
    ) -> list[dict[str, Any]]:
        """Descriptors of the manifests whose subject is ``subject``, filtered by type.

        ``version`` identifies the index ``listed`` reads (the cached parse): while it is
        the one the map was synced to, nothing is listed or read."""
        result = list(self._map(repo, listed, version).get(subject, {}).values())
        if artifact_type is not None:
            result = [d for d in result if d.get("artifactType") == artifact_type]
        return sorted(result, key=lambda d: str(d["digest"]))

    def added(self, repo: str, digest: str, size: int, manifest: Manifest) -> None:
        """A manifest was put (called after its ``index.json`` write)."""
        if not self._syncing.locked():  # else the sync's next round lists it
            self._add(repo, digest, size, manifest)

    def removed(self, repo: str, digest: str) -> None:
        """A manifest was deleted (called after its ``index.json`` write)."""
        if not self._syncing.locked():  # else the sync's next round drops it
            self._remove(repo, digest)

    def _add(self, repo: str, digest: str, size: int, manifest: Manifest) -> None:
        maps = self._maps.get(repo)
        if maps is None:
            return
        self._known[repo].add(digest)
        if manifest.subject is not None:
            subject = str(manifest.subject.digest)
            maps.setdefault(subject, {})[digest] = referrer_descriptor(digest, size, manifest)
            self._subject_of[repo][digest] = subject

    def _remove(self, repo: str, digest: str) -> None:
        """Forget ``digest`` as a referrer: one look-up, however large the repository."""
        maps = self._maps.get(repo)
        if maps is None:
            return
        self._known[repo].discard(digest)
        subject = self._subject_of[repo].pop(digest, None)
        if subject is None:
            return
        referrers = maps.get(subject)
        if referrers is not None:
            referrers.pop(digest, None)
            if not referrers:
                maps.pop(subject, None)
