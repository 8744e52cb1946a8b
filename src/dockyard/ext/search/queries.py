"""The root resolvers of zot's search queries, reading only the in-memory index.

An instance serves one request: it holds the index snapshot taken when the request
started and the caller's rights. A repository the caller may not read is skipped
everywhere, so it shows in no result and no count, exactly as if it did not exist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError

from .pages import page
from .rank import rank_repo_name
from .records import ImageMeta, IndexMeta, Meta, RepoMeta, platforms
from .snapshot import Snapshot
from .summaries import Obj, image_summary, referrer, repo_summary

Tagged = tuple[RepoMeta, str | None, Meta]


@dataclass(frozen=True)
class Caller:
    """What the caller may do: read a repository, delete in it."""

    can_read: Callable[[str], bool]
    can_delete: Callable[[str], bool]


EVERYONE = Caller(lambda repo: True, lambda repo: True)


def _repo_sorts() -> dict[str, Callable[[list[tuple[RepoMeta, int]]], None]]:
    def by(key: Callable[[tuple[RepoMeta, int]], Any], reverse: bool = False) -> Any:
        return lambda items: items.sort(key=key, reverse=reverse)

    name = by(lambda item: item[0].name)
    return {
        "ALPHABETIC_ASC": name,
        "ALPHABETIC_DSC": by(lambda item: item[0].name, reverse=True),
        "RELEVANCE": by(lambda item: (item[1], item[0].name)),
        "UPDATE_TIME": by(lambda item: (-item[0].last_pushed, item[0].name)),
        "SIZE": by(lambda item: (-item[0].size, item[0].name)),
        "DOWNLOADS": name,
        "STARS": name,
    }


def _image_sorts() -> dict[str, Callable[[list[Tagged]], None]]:
    def by(key: Callable[[Tagged], Any], reverse: bool = False) -> Any:
        return lambda items: items.sort(key=key, reverse=reverse)

    name = by(lambda i: (i[0].name, i[1] or ""))
    return {
        "ALPHABETIC_ASC": name,
        "ALPHABETIC_DSC": by(lambda i: (i[0].name, i[1] or ""), reverse=True),
        "RELEVANCE": name,
        "UPDATE_TIME": by(lambda i: (-i[2].pushed, i[0].name, i[1] or "")),
        "SIZE": by(lambda i: (-i[2].size, i[0].name, i[1] or "")),
        "DOWNLOADS": name,
        "STARS": name,
    }


REPO_SORTS = _repo_sorts()
IMAGE_SORTS = _image_sorts()
_EMPTY_PAGE = {"Page": {"TotalCount": 0, "ItemCount": 0}, "Results": []}


def parse_image(image: str) -> tuple[str, str | None, str | None]:
    """``repo:tag`` or ``repo@digest`` -> (repo, tag, digest)."""
    if "@" in image:
        repo, _, digest = image.partition("@")
        return repo, None, digest
    repo, sep, tag = image.rpartition(":")
    if not sep or not repo or not tag:
        raise GraphQLError(f"image must be repo:tag or repo@digest, got {image!r}")
    return repo, tag, None


def _matches(meta: Meta, repo: RepoMeta, flt: dict[str, Any] | None) -> bool:
    if not flt:
        return True
    plats = platforms(meta)
    oses = [o for o in flt.get("Os") or [] if o]
    arches = [a for a in flt.get("Arch") or [] if a]
    if oses and not any(os in oses for os, _ in plats):
        return False
    if arches and not any(arch in arches for _, arch in plats):
        return False
    return not (flt.get("HasToBeSigned") and not repo.signed(meta.digest))


class Query:
    """zot's ``Query`` type: one method per field, called by graphql-core's resolver."""

    def __init__(self, snapshot: Snapshot, caller: Caller) -> None:
        self.snapshot = snapshot
        self.repos = snapshot.repos
        self.caller = caller

    # -- helpers -----------------------------------------------------------------------

    def _repo(self, name: str) -> RepoMeta | None:
        meta = self.repos.get(name)
        if meta is None or not self.caller.can_read(name):
            return None
        return meta

    def _readable(self) -> Iterator[RepoMeta]:
        for name, meta in self.repos.items():
            if meta.tags and self.caller.can_read(name):
                yield meta

    def _tagged(self, repo: RepoMeta) -> Iterator[Tagged]:
        for tag, digest in repo.tags.items():
            meta = repo.manifests.get(digest)
            if meta is not None:
                yield repo, tag, meta

    def _images_page(self, images: list[Tagged], requested: Any, default: str) -> Obj:
        chosen, info = page(images, requested, IMAGE_SORTS, default)
        delete = self.caller.can_delete
        return {"Page": info, "Results": [image_summary(r, t, m, delete) for r, t, m in chosen]}

    def _repos_page(self, repos: list[tuple[RepoMeta, int]], requested: Any, default: str) -> Any:
        chosen, info = page(repos, requested, REPO_SORTS, default)
        return info, [repo_summary(r, self.caller.can_delete, rank) for r, rank in chosen]

    def _all_repos_page(self, requested: Any, default: str) -> Any:
        """Every readable repository, in an order the snapshot computed once."""
        criterion = (requested or {}).get("sortBy") or default
        ordered = self.snapshot.ordered(criterion)
        if ordered is None:
            raise GraphQLError(f"sorting by {criterion} is not supported here")
        can_read = self.caller.can_read
        repos = [(r, 1) for r in ordered if can_read(r.name)]
        chosen, info = page(repos, requested, {criterion: lambda items: None}, criterion)
        return info, [repo_summary(r, self.caller.can_delete, rank) for r, rank in chosen]

    def _find(self, image: str, digest: str | None = None) -> Tagged:
        name, tag, by_digest = parse_image(image)
        repo = self._repo(name)
        meta = None
        if repo is not None:
            ref = by_digest or (repo.tags.get(tag) if tag is not None else None)
            meta = repo.manifests.get(ref) if ref else None
        if repo is None or meta is None:
            raise GraphQLError(f"image {image!r} not found")
        if digest and isinstance(meta, IndexMeta):
            child = next((c for c in meta.children if c.digest == digest), None)
            if child is None:
                raise GraphQLError(f"image {image!r} has no manifest {digest}")
            meta = child
        return repo, tag, meta

    # -- queries -----------------------------------------------------------------------

    def GlobalSearch(
        self,
        info: Any,
        query: str,
        filter: Any = None,
        requestedPage: Any = None,
    ) -> Obj:
        empty = {"Page": {"TotalCount": 0, "ItemCount": 0}, "Images": [], "Repos": [], "Layers": []}
        if ":" in query:
            name, _, prefix = query.partition(":")
            repo = self._repo(name.strip())
            if repo is None:
                return empty
            images = [i for i in self._tagged(repo) if (i[1] or "").startswith(prefix.strip())]
            images = [i for i in images if _matches(i[2], repo, filter)]
            result = self._images_page(images, requestedPage, "ALPHABETIC_ASC")
            return {**empty, "Page": result["Page"], "Images": result["Results"]}
        if not query.strip() and not filter:
            page_info, repos = self._all_repos_page(requestedPage, "ALPHABETIC_ASC")
            return {**empty, "Page": page_info, "Repos": repos}
        found: list[tuple[RepoMeta, int]] = []
        for repo in self._readable():
            rank = rank_repo_name(query, repo.name)
            if rank < 0:
                continue
            if filter and not any(_matches(m, repo, filter) for _, _, m in self._tagged(repo)):
                continue
            found.append((repo, rank))
        default = "RELEVANCE" if query.strip() else "ALPHABETIC_ASC"
        page_info, repos = self._repos_page(found, requestedPage, default)
        return {**empty, "Page": page_info, "Repos": repos}

    def RepoListWithNewestImage(self, info: Any, requestedPage: Any = None) -> Obj:
        page_info, results = self._all_repos_page(requestedPage, "ALPHABETIC_ASC")
        return {"Page": page_info, "Results": results}

    def ExpandedRepoInfo(self, info: Any, repo: str) -> Obj:
        meta = self._repo(repo)
        if meta is None:
            return {"Images": None, "Summary": None}
        images = sorted(self._tagged(meta), key=lambda i: i[1] or "")
        delete = self.caller.can_delete
        return {
            "Images": [image_summary(r, t, m, delete) for r, t, m in images],
            "Summary": repo_summary(meta, delete),
        }

    def ImageList(self, info: Any, repo: str, requestedPage: Any = None) -> Obj:
        if repo:
            meta = self._repo(repo)
            repos = [meta] if meta is not None and meta.tags else []
        else:
            repos = list(self._readable())
        images = [i for r in repos for i in self._tagged(r)]
        return self._images_page(images, requestedPage, "ALPHABETIC_ASC")

    def ImageListForDigest(self, info: Any, id: str, requestedPage: Any = None) -> Obj:
        images = [
            i
            for r in self._readable()
            if id in r.digests
            for i in self._tagged(r)
            if id in i[2].blobs()
        ]
        return self._images_page(images, requestedPage, "ALPHABETIC_ASC")

    def Image(self, info: Any, image: str) -> Obj:
        repo, tag, meta = self._find(image)
        return image_summary(repo, tag, meta, self.caller.can_delete)

    def Referrers(
        self,
        info: Any,
        repo: str,
        digest: str,
        type: list[str] | None = None,
    ) -> list[Obj]:
        meta = self._repo(repo)
        if meta is None:
            return []
        wanted = set(type or [])
        return [
            referrer(r)
            for r in meta.referrers.get(digest, ())
            if not wanted or r.artifact_type in wanted
        ]

    def _layer_lists(
        self, image: str, digest: str | None
    ) -> tuple[Tagged, list[tuple[Tagged, tuple[str, ...]]]]:
        target = self._find(image, digest)
        candidates: list[tuple[Tagged, tuple[str, ...]]] = []
        for repo in self._readable():
            for repo_, tag, meta in self._tagged(repo):
                for m in meta.children if isinstance(meta, IndexMeta) else (meta,):
                    candidates.append(((repo_, tag, m), tuple(layer.digest for layer in m.layers)))
        return target, candidates

    def _related(self, image: str, digest: str | None, requested: Any, derived: bool) -> Obj:
        target, candidates = self._layer_lists(image, digest)
        metas = target[2].children if isinstance(target[2], IndexMeta) else (target[2],)
        mine = [
            tuple(layer.digest for layer in m.layers) for m in metas if isinstance(m, ImageMeta)
        ]
        found: dict[tuple[str, str | None], Tagged] = {}
        for candidate, layers in candidates:
            if candidate[2].digest in {m.digest for m in metas}:
                continue
            for own in mine:
                longer, shorter = (layers, own) if derived else (own, layers)
                if shorter and len(longer) > len(shorter) and longer[: len(shorter)] == shorter:
                    found[(candidate[0].name, candidate[1])] = candidate
        return self._images_page(list(found.values()), requested, "ALPHABETIC_ASC")

    def DerivedImageList(
        self,
        info: Any,
        image: str,
        digest: str | None = None,
        requestedPage: Any = None,
    ) -> Obj:
        return self._related(image, digest, requestedPage, derived=True)

    def BaseImageList(
        self,
        info: Any,
        image: str,
        digest: str | None = None,
        requestedPage: Any = None,
    ) -> Obj:
        return self._related(image, digest, requestedPage, derived=False)

    # -- declared for zot's clients; dockyard has no CVE scanner nor user preferences ----

    def CVEListForImage(self, info: Any, image: str, **_: Any) -> Obj:
        _repo, tag, _meta = self._find(image)
        return {
            "Tag": tag,
            "CVEList": [],
            "Summary": None,
            "Page": {"TotalCount": 0, "ItemCount": 0},
        }

    def ImageListForCVE(self, info: Any, **_: Any) -> Obj:
        return _EMPTY_PAGE

    def ImageListWithCVEFixed(self, info: Any, **_: Any) -> Obj:
        return _EMPTY_PAGE

    def StarredRepos(self, info: Any, **_: Any) -> Obj:
        return _EMPTY_PAGE

    def BookmarkedRepos(self, info: Any, **_: Any) -> Obj:
        return _EMPTY_PAGE
