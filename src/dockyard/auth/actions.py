"""Every endpoint mapped to what it needs: an action on a repository, or a login.

The table, by endpoint of the distribution spec (``<name>`` is the repository):

=====================================  ==========  ===========================================
endpoint                               method      needs
=====================================  ==========  ===========================================
``/v2/``                               GET, HEAD   a login (anonymous only when nothing else)
``/v2/_catalog``                       GET         a login or anonymous access; lists readable
``<name>/tags/list``                   GET         ``read``
``<name>/referrers/<digest>``          GET         ``read``
``<name>/manifests/<ref>``             GET, HEAD   ``read``
``<name>/manifests/<ref>``             PUT         ``create``; ``update`` when a tag it sets
                                                   already exists (the tag would move)
``<name>/manifests/<ref>``             DELETE      ``delete``
``<name>/blobs/<digest>``              GET, HEAD   ``read`` (a HEAD links in a blob held
                                                   elsewhere only with ``create`` too)
``<name>/blobs/<digest>``              DELETE      ``delete``
``<name>/blobs/uploads/...``           any         ``create`` (a mount also needs ``read`` on
                                                   its source, checked by the handler)
``/zot/auth/apikey``                   any         a login (password or client certificate)
``/v2/_zot/ext/search``                GET, POST   a login or anonymous access; answers only
                                                   about readable repositories
=====================================  ==========  ===========================================

Uploads count as ``create``, as in zot: status queries and cancels are part of a push.
Whether a manifest PUT moves a tag is decided here on the headers, and again when it
publishes (``RepoManifests.put``), since the tag may appear while the body arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dockyard.auth.access import CREATE, DELETE, READ


class Kind(Enum):
    #: ``/v2/``: the version check every client makes first (and ``docker login`` uses).
    BASE = "base"
    CATALOG = "catalog"
    #: An action on one repository.
    REPO = "repo"
    #: The API key endpoints: any authenticated caller, acting on its own keys.
    APIKEYS = "apikeys"
    #: The search API: like the catalog, it filters what it answers by read access.
    SEARCH = "search"


@dataclass(frozen=True)
class Target:
    kind: Kind
    repo: str | None = None
    action: str | None = None
    #: For a manifest PUT: the tags it sets; it is an ``update`` when one exists already.
    tags: tuple[str, ...] = ()


APIKEY_PATH = "/zot/auth/apikey"
SEARCH_PATH = "/v2/_zot/ext/search"

_REPO_ACTIONS = {
    "manifests": {"GET": READ, "HEAD": READ, "PUT": CREATE, "DELETE": DELETE},
    "blobs": {"GET": READ, "HEAD": READ, "DELETE": DELETE},
    "uploads": {m: CREATE for m in ("GET", "HEAD", "POST", "PATCH", "PUT", "DELETE")},
    "tags": {"GET": READ, "HEAD": READ},
    "referrers": {"GET": READ, "HEAD": READ},
}

_REPO_ROUTE = "/v2/{name}/"


def classify(
    method: str,
    path: str,
    route: str | None,
    name: str | None,
    reference: str | None,
    query_tags: list[str],
) -> Target | None:
    """What a request needs, from its path and the route the router matched.

    ``route`` is the matched route's pattern (``/v2/{name}/manifests/{reference}``), None
    when nothing matched. Returns None for paths that are not ours to guard (health
    checks, metrics: their own modules decide). Anything else under ``/v2/`` that matched
    no route needs a login, like ``/v2/``, and then gets its 404 or 405.
    """
    if path.rstrip("/") == APIKEY_PATH:
        return Target(Kind.APIKEYS)
    if path in ("/v2", "/v2/"):
        return Target(Kind.BASE)
    if path == "/v2/_catalog":
        return Target(Kind.CATALOG)
    if path.rstrip("/") == SEARCH_PATH:
        return Target(Kind.SEARCH)
    if not path.startswith("/v2/"):
        return None
    if name is None or route is None or not route.startswith(_REPO_ROUTE):
        return Target(Kind.BASE)
    rest = route[len(_REPO_ROUTE) :]
    resource = "uploads" if rest.startswith("blobs/uploads") else rest.split("/", 1)[0]
    action = _REPO_ACTIONS.get(resource, {}).get(method, READ)
    tags: tuple[str, ...] = ()
    if resource == "manifests" and method == "PUT":
        tags = tuple(query_tags)
        if reference is not None and ":" not in reference:
            tags = (reference, *tags)
    return Target(Kind.REPO, repo=name, action=action, tags=tags)
