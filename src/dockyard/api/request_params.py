"""What every handler needs: the store, a validated name, a validated digest, paging."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from dockyard.oci.digest import Digest
from dockyard.oci.names import InvalidName, validate_name
from dockyard.storage.store import RootServices, Store
from dockyard.web.app_keys import STORE
from dockyard.web.spec_errors import ApiError

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}


def store(request: web.Request) -> Store:
    return request.app[STORE]


def repo_name(request: web.Request) -> str:
    """The repository name from the path, checked against the spec's grammar.

    The one place a name is taken from a request: the handlers and the access guard
    both call it. aiohttp percent-decodes ``match_info``, so ``team%2Fapp`` would arrive
    as ``team/app``; the name is therefore also read from the raw path, and must be
    written there as it is (an encoded slash is one segment holding a slash, not a name).
    """
    name = request.match_info["name"]
    if "%" in request.raw_path:
        raw = _raw_name(request)
        if raw != name:
            raise InvalidName(
                f"repository name {raw!r} is percent-encoded: write its slashes as they are"
            )
    return validate_name(name)


def _raw_name(request: web.Request) -> str:
    """The name as the client wrote it: the raw path less ``/v2/`` and the route's suffix.

    The router matched the raw path, where each part after the name is one segment, so the
    suffix has as many slashes as the route's pattern after ``{name}``.
    """
    resource = request.match_info.route.resource
    pattern = resource.canonical if resource is not None else ""
    suffix_slashes = pattern.partition("{name}")[2].count("/")
    path = request.raw_path.partition("?")[0]
    return path.removeprefix("/v2/").rsplit("/", suffix_slashes)[0]


def services(request: web.Request) -> tuple[str, RootServices]:
    """The validated repository name and the storage root it lives in."""
    name = repo_name(request)
    return name, store(request).for_repo(name)


def digest_param(value: str) -> Digest:
    """Parse a digest from a path or query; InvalidDigest maps to DIGEST_INVALID."""
    return Digest.parse(value)


def page_params(request: web.Request) -> tuple[int | None, str | None]:
    """``n`` and ``last`` from the query; a bad ``n`` is the client's error, not ours."""
    raw_n = request.query.get("n")
    n: int | None = None
    if raw_n is not None and raw_n != "":
        if not raw_n.isdigit():
            raise ApiError(
                "PAGINATION_NUMBER_INVALID", f"n must be a non-negative integer, got {raw_n!r}", 400
            )
        n = int(raw_n)
    last = request.query.get("last") or None
    return n, last


def next_link(request: web.Request, n: int, last: str) -> dict[str, str]:
    """The ``Link`` header pointing at the next page."""
    return {"Link": f'<{request.path}?{urlencode({"n": n, "last": last})}>; rel="next"'}
