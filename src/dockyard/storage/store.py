"""The whole store: storage roots (the default one and ``subPaths``) and the catalog.

A repository belongs to the root of the longest ``subPaths`` prefix matching its first
path component (zot's routing rule), else to the default root.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.oci.digest import Digest
from dockyard.storage.catalog import Catalog
from dockyard.storage.manifests import RepoManifests
from dockyard.storage.repo_blobs import RepoBlobs
from dockyard.storage.root import RootSettings, StorageRoot


@dataclass
class RootServices:
    """A storage root and the services acting on it."""

    root: StorageRoot
    blobs: RepoBlobs
    manifests: RepoManifests


class Store:
    """Routes each repository to its storage root."""

    def __init__(self, default: RootSettings, sub_paths: dict[str, RootSettings] | None = None):
        sub_paths = sub_paths or {}
        self.catalog = Catalog([default.root, *(s.root for s in sub_paths.values())])
        self.default = self._services(default)
        self.sub_paths = {
            prefix.strip("/"): self._services(settings) for prefix, settings in sub_paths.items()
        }

    def _services(self, settings: RootSettings) -> RootServices:
        root = StorageRoot(settings, on_new_repo=self._repo_created)
        return RootServices(root, RepoBlobs(root), RepoManifests(root))

    def _repo_created(self, repo: str) -> None:
        self.catalog.add(repo)

    def for_repo(self, repo: str) -> RootServices:
        first = repo.split("/", 1)[0]
        return self.sub_paths.get(first, self.default)

    def roots(self) -> list[RootServices]:
        return [self.default, *self.sub_paths.values()]

    async def mount(self, repo: str, digest: Digest, source: str | None) -> bool:
        """Make a blob another repository holds appear in ``repo`` without an upload.

        With no ``source``, any repository of the same root will do. Across roots there is
        no link to make: the caller answers with a fresh upload session instead.
        """
        target = self.for_repo(repo)
        if source is not None:
            if self.for_repo(source) is not target:
                return False
            return await target.blobs.link_from(repo, digest, source)
        if target.root.files.stat(repo, digest) is not None:
            return True
        for candidate in self.catalog.all():
            same_root = candidate != repo and self.for_repo(candidate) is target
            if same_root and await target.blobs.link_from(repo, digest, candidate):
                return True
        return False
