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

from .http import DISCOVER_PATH, PATH, SEARCH_INDEX, discover, schema, search
from .index import SearchIndex

__all__ = ["PATH", "SEARCH_INDEX", "SearchIndex", "install"]


def install(app: web.Application) -> SearchIndex:
    """Serve the search API of ``app``'s store; call after the store is set."""
    schema()  # parse the SDL now, not on the first query
    store = app[STORE]
    index = SearchIndex(store)
    store.observe(index)
    app[SEARCH_INDEX] = index
    app.router.add_post(PATH, search)
    app.router.add_get(PATH, search)
    app.router.add_get(DISCOVER_PATH, discover)
    app.cleanup_ctx.append(_keep_current)
    return index


async def _keep_current(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SEARCH_INDEX].run(), name="search-index")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
