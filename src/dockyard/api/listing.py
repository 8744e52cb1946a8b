"""Paged listings: tags (end-8a/8b) and the catalog."""

from __future__ import annotations

import asyncio
import bisect
import json

from aiohttp import web

from dockyard.api.request_params import next_link, page_params, services, store
from dockyard.storage.layout import RepoIndex
from dockyard.web.request_keys import read_filter


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


#: The memo key of an index's unpaged tags list, encoded.
TAGS_JSON = "tags-json"


def _encode_tags(name: str, index: RepoIndex) -> bytes:
    """The unpaged list clients ask for, sorted and encoded once per index version."""
    body = json.dumps({"name": name, "tags": index.sorted_tags()}).encode()
    index.memo[TAGS_JSON] = body
    return body


async def list_tags(request: web.Request) -> web.Response:
    name, svc = services(request)
    n, last = page_params(request)
    index = await svc.root.read_index(name)
    body = index.memo.get(TAGS_JSON)
    if body is None:
        # Once per index version, aside: sorting and encoding 20,000 tags takes a while.
        body = await asyncio.to_thread(_encode_tags, name, index)
    if n is None and last is None:
        return web.Response(body=body, content_type="application/json")
    tags, more = _page(index.sorted_tags(), n, last)
    return _paged(request, "tags", tags, more, name=name)


async def catalog(request: web.Request) -> web.Response:
    n, last = page_params(request)
    names = await store(request).catalog.current()
    readable = read_filter(request)
    if readable is not None:  # only what the caller may read, paged after filtering
        names = [name for name in names if readable(name)]
    names, more = _page(names, n, last)
    return _paged(request, "repositories", names, more)
