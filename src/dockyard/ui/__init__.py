"""``extensions.ui``: the web UI, served at ``/`` from assets shipped in this package.

The page is static (HTML, one script, one stylesheet: no CDN, no build step) and reads
everything through the search API and the distribution API, as any client would. What
this module adds on the server side is the page itself, strict security headers, and
browser sessions (:mod:`.session`) so a user logs in without the browser keeping a
password.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from importlib.resources import files

from aiohttp import web

from dockyard.auth.sessions import SessionStore
from dockyard.web.routing import Access, Route, add_routes

from . import session

_STATIC = files(__package__).joinpath("static")
#: The only files served: nothing else in the package can be fetched through the UI.
_ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Nothing but our own script and stylesheet may run or load; no framing.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}


async def index(request: web.Request) -> web.Response:
    body = _STATIC.joinpath("index.html").read_bytes()
    return web.Response(body=body, content_type="text/html", charset="utf-8", headers=_HEADERS)


async def asset(request: web.Request) -> web.Response:
    name = request.match_info["asset"]
    content_type = _ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    body = _STATIC.joinpath(name).read_bytes()
    return web.Response(body=body, headers={**_HEADERS, "Content-Type": content_type})


async def favicon(request: web.Request) -> web.Response:
    """Browsers ask for it whatever the page says; answer rather than log a 404."""
    raise web.HTTPFound("/ui/static/favicon.svg")


#: The page and its files: public, as the page holds nothing until its user logs in.
ROUTES = (
    Route("GET", "/", index, Access.PUBLIC),
    Route("GET", "/favicon.ico", favicon, Access.PUBLIC),
    Route("GET", "/ui/static/{asset}", asset, Access.PUBLIC),
)


def install(
    app: web.Application, guard: session.LoginGuard | None, sessions: SessionStore | None
) -> None:
    """Serve the UI at ``/``; with auth on (``guard``), browser sessions too, kept in
    ``sessions`` (the running process picks the store every worker or replica shares)."""
    app[session.GUARD] = guard
    if guard is None:
        sessions = None
    elif sessions is not None:
        guard.sessions = store = sessions

        async def close(app: web.Application) -> AsyncIterator[None]:
            yield
            await store.close()

        app.cleanup_ctx.append(close)
    app[session.SESSIONS] = sessions
    add_routes(app, ROUTES + session.ROUTES)
