"""A route: its method, path and handler, and what a caller needs to use it.

Every package that serves HTTP declares its routes as :class:`Route` rows, with the access
each needs next to its path (the API's table is ``dockyard.api.routes``; the search API,
the metrics and the UI declare theirs the same way). :func:`add_routes` installs them and
remembers each row, so the auth middleware reads what a request needs from the route the
router matched (:func:`target_of`) and keeps no URL table of its own.

A request that matched no route (404, 405) needs what the fixed path it names needs
(``/v2/_catalog``, ``/zot/auth/apikey`` ...), else a login anywhere under ``/v2/``, so an
anonymous caller learns nothing of the API's shape, and nothing elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from aiohttp import web

from dockyard.web.spec_errors import Handler


class Access(Enum):
    """What kind of permission a route needs."""

    #: Not guarded: the probes, the UI's page and its session endpoint.
    PUBLIC = "public"
    #: A login, anonymous only when nothing else is configured: ``/v2/`` (the version
    #: check every client makes first, and ``docker login`` uses) and unknown ``/v2/`` paths.
    LOGIN = "login"
    #: ``/v2/_catalog``: lists the repositories the caller may read.
    CATALOG = "catalog"
    #: The search API: like the catalog, it filters what it answers by read access.
    SEARCH = "search"
    #: An action (:attr:`Route.action`) on the repository the path names.
    REPO = "repo"
    #: The API key endpoints: any caller logged in with a password or certificate.
    OWN_KEYS = "own_keys"
    #: The metrics: only who may read every repository.
    METRICS = "metrics"


@dataclass(frozen=True)
class Route:
    """One row of a route table. A ``GET`` also answers ``HEAD``, as ``add_get`` does."""

    method: str
    path: str
    handler: Handler
    access: Access
    #: For ``Access.REPO``: the action on the repository (``read``, ``create``, ``delete``).
    action: str | None = None
    #: A manifest PUT: it needs ``update`` instead when a tag it sets exists already.
    sets_tags: bool = False


@dataclass(frozen=True)
class Target:
    """What one request needs, from its route and its path."""

    access: Access
    repo: str | None = None
    action: str | None = None
    #: For a manifest PUT: the tags it sets; it is an ``update`` when one exists already.
    tags: tuple[str, ...] = ()


#: The installed routes: aiohttp's route object -> its row.
INSTALLED: web.AppKey[dict[web.AbstractRoute, Route]] = web.AppKey("routes", dict)
#: Installed paths without parameters, for a request that matched none of their methods.
FIXED: web.AppKey[dict[str, Route]] = web.AppKey("fixed_routes", dict)


def add_routes(app: web.Application, routes: tuple[Route, ...]) -> None:
    """Register ``routes`` on ``app`` in order, remembering what each needs."""
    installed = app.setdefault(INSTALLED, {})
    fixed = app.setdefault(FIXED, {})
    for route in routes:
        methods = ("HEAD", "GET") if route.method == "GET" else (route.method,)
        for method in methods:
            installed[app.router.add_route(method, route.path, route.handler)] = route
        if "{" not in route.path:
            fixed.setdefault(route.path, route)


def target_of(request: web.Request, known: dict[str, Route]) -> Target | None:
    """What ``request`` needs: from the route it matched, else from its path alone.

    ``known`` adds fixed paths that need their access even where their routes are not
    installed (the API key endpoints with keys off). None when the request is not the
    auth middleware's to guard (the probes, the UI, any path outside ``/v2/``).
    """
    app = request.app
    matched = app.get(INSTALLED, {}).get(request.match_info.route)
    if matched is None:
        path = request.path
        fixed = app.get(FIXED, {})
        matched = fixed.get(path) or known.get(path) or known.get(path.rstrip("/"))
    if matched is None:
        return Target(Access.LOGIN) if request.path.startswith("/v2/") else None
    if matched.access is Access.PUBLIC:
        return None
    if matched.access is not Access.REPO:
        return Target(matched.access)
    tags: tuple[str, ...] = ()
    if matched.sets_tags:
        tags = tuple(request.query.getall("tag", []))
        reference = request.match_info.get("reference")
        if reference is not None and ":" not in reference:
            tags = (reference, *tags)
    return Target(
        Access.REPO, repo=request.match_info.get("name"), action=matched.action, tags=tags
    )
