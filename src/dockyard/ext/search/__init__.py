"""``extensions.search``: zot's GraphQL search API over an in-memory index.

:func:`install` adds the endpoint, starts the index (built in threads at start-up, then
updated on every storage change) and stops it with the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from dockyard.web.app_keys import STORE
from dockyard.web.routing import Access, Route, add_routes

from .graphql_endpoint import DISCOVER_PATH, PATH, SEARCH_INDEX, discover, schema, search
from .index import SearchIndex

__all__ = ["PATH", "ROUTES", "SEARCH_INDEX", "SearchIndex", "install"]

#: The search API answers like the catalog: only about repositories the caller may read.
ROUTES = (
    Route("POST", PATH, search, Access.SEARCH),
    Route("GET", PATH, search, Access.SEARCH),
    Route("GET", DISCOVER_PATH, discover, Access.LOGIN),
)


def install(app: web.Application) -> SearchIndex:
    """Serve the search API of ``app``'s store; call after the store is set."""
    schema()  # parse the SDL now, not on the first query
    store = app[STORE]
    index = SearchIndex(store)
    store.observe(index)
    app[SEARCH_INDEX] = index
    add_routes(app, ROUTES)
    app.cleanup_ctx.append(_keep_current)
    return index


async def _keep_current(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SEARCH_INDEX].run(), name="search-index")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
