"""Read-your-writes across replicas: the shared change counters around each request.

With a ``cacheDriver``, the caches of a replica (parsed ``index.json`` files, referrers,
the catalog) are validated against change counters in Redis. Before a request reads
storage, its replica fetches them (one round trip, on the loop but never blocking it,
shared with the requests that arrive meanwhile); after the handler, the changes this
replica made are published before the answer leaves. So a tag pushed through replica A
is served by replica B on the very next request, with no validity window.

A Redis that does not answer fails the request with 503 and ``Retry-After`` (the error
middleware outside this one writes the body) before the handler runs: nothing is
half-done. Without a ``cacheDriver`` this middleware is not installed at all.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from dockyard.web.app_keys import STORE
from dockyard.web.spec_errors import Handler

#: The API version check reads no storage: it answers even while Redis is down.
_NO_STORAGE = frozenset({"/v2", "/v2/"})


@web.middleware
async def freshness_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/v2/") or request.path in _NO_STORAGE:
        return await handler(request)
    store = request.app[STORE]
    await store.refresh()
    try:
        response = await handler(request)
    except BaseException:
        # What was done before the failure is published, best effort: the handler's own
        # failure is the one to report.
        with contextlib.suppress(Exception):
            await store.publish()
        raise
    await store.publish()
    return response
