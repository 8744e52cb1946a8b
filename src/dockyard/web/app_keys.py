"""Keys of the aiohttp application that more than one package reads or fills.

The running process (``dockyard.app``) sets them when it builds the application; the
handlers, the extensions and the UI read them. A key that only one package uses lives in
that package.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from dockyard.storage.store import Store

#: The storage engine every handler serves from.
STORE: web.AppKey[Store] = web.AppKey("store", Store)

#: Called after each response is sent: (request, response, seconds since it arrived).
AfterResponse = Callable[[web.BaseRequest, web.StreamResponse, float], None]
#: The observers of each finished request (metrics); the access logger calls them.
AFTER_RESPONSE: web.AppKey[list[AfterResponse]] = web.AppKey("after_response", list)
