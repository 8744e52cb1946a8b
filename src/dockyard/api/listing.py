"""Paged listings: tags (end-8a/8b) and the catalog."""

from __future__ import annotations

import bisect

from aiohttp import web

from dockyard.api.common import next_link, page_params, services, store


def _page(names: list[str], n: int | None, last: str | None) -> tuple[list[str], bool]:
    """Up to ``n`` names of a sorted list after ``last``, and whether more remain."""
    start = bisect.bisect_right(names, last) if last else 0
    if n is None:
        return names[start:], False
    return names[start : start + n], start + n < len(names)


def _paged(
    request: web.Request, key: str, names: list[str], more: bool, **extra: str
) -> web.Response:
    n, _ = page_params(request)
    headers = next_link(request, n, names[-1]) if more and names and n else {}
    return web.json_response({**extra, key: names}, headers=headers)


async def list_tags(request: web.Request) -> web.Response:
    name, svc = services(request)
    n, last = page_params(request)
    tags, more = _page(sorted(svc.root.index(name).tags()), n, last)
    return _paged(request, "tags", tags, more, name=name)


async def catalog(request: web.Request) -> web.Response:
    n, last = page_params(request)
    names, more = _page(store(request).catalog.names(), n, last)
    return _paged(request, "repositories", names, more)
