"""``/ui/session``: log in (POST), who am I (GET), log out (DELETE).

Logging in checks the password once, through the same authenticator as every registry
request, and answers with a session cookie that is ``Secure``, ``HttpOnly`` and
``SameSite=Strict``, plus the session's CSRF token in the body. The page keeps the token
in memory only and sends it with every write; the password is never stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from typing import Any, Protocol

from aiohttp import web

from dockyard.auth.authenticator import Authenticator, AuthFailed
from dockyard.auth.failures import Throttled
from dockyard.auth.identity import Identity
from dockyard.auth.sessions import COOKIE, CSRF_HEADER, SessionStore
from dockyard.web.bodies import read_limited
from dockyard.web.routing import Access, Route
from dockyard.web.spec_errors import error_response

log = logging.getLogger("dockyard.auth")
PATH = "/ui/session"
SESSIONS: web.AppKey[SessionStore | None] = web.AppKey("ui_sessions")


class LoginGuard(Protocol):
    """What a UI login needs of the registry's auth middleware (``api.auth_middleware.Guard``):
    the same password check, failed-login brake and answers as every registry request."""

    auth: Authenticator
    fail_delay: float
    sessions: SessionStore | None

    async def identify(
        self, client: str, authorization: list[str], peercert: Any = None
    ) -> Identity:
        """Who sent these credentials; AuthFailed or Throttled when not admitted."""

    async def too_many(self, client: str) -> web.Response:
        """The 429 for a client over its failed-login limit."""


#: The auth middleware the running process installed; None when auth is off.
GUARD: web.AppKey[LoginGuard | None] = web.AppKey("ui_guard")


def _state(auth: bool, user: str | None, csrf: str | None) -> dict[str, Any]:
    return {"auth": auth, "user": user, "csrf": csrf, "csrfHeader": CSRF_HEADER}


async def whoami(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    if sessions is None:
        return web.json_response(_state(False, None, None))
    guard = request.app[GUARD]
    htpasswd = guard.auth.htpasswd if guard is not None else None
    current = await sessions.current(request.cookies.get(COOKIE), htpasswd)
    if current is None:
        return web.json_response(_state(True, None, None))
    return web.json_response(_state(True, current.identity.user, current.csrf))


async def login(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    guard = request.app[GUARD]
    if sessions is None or guard is None:
        return error_response("UNSUPPORTED", "authentication is not configured", 400)
    if request.content_type != "application/json":
        # Forms from other sites cannot send JSON without a CORS preflight we never grant.
        return error_response("BAD_REQUEST", "send the credentials as application/json", 415)
    raw = await read_limited(request, 16 * 1024)
    try:
        body = json.loads(raw or b"")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error_response("BAD_REQUEST", "body must be a JSON object", 400)
    user, password = body.get("username"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or not user:
        return error_response("BAD_REQUEST", "username and password are required", 400)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    client = request.remote or ""
    try:
        who = await guard.identify(client, [f"Basic {basic}"])
    except Throttled:
        return await guard.too_many(client)
    except AuthFailed as exc:
        log.info("UI login failed from %s: %s", request.remote, exc.reason)
        if guard.fail_delay:  # the same brake on guessing as every other login
            await asyncio.sleep(guard.fail_delay)
        return error_response("UNAUTHORIZED", "invalid user name or password", 401)
    if who.anonymous or who.method != "htpasswd":
        return error_response("UNAUTHORIZED", "log in with a user name and password", 401)
    htpasswd = guard.auth.htpasswd
    credential = htpasswd.entry(user) if htpasswd is not None else None
    sid, current = await sessions.create(who, credential)
    response = web.json_response(_state(True, who.user, current.csrf))
    response.set_cookie(COOKIE, sid, path="/", secure=True, httponly=True, samesite="Strict")
    return response


async def logout(request: web.Request) -> web.Response:
    sessions = request.app[SESSIONS]
    if sessions is not None:
        sid = request.cookies.get(COOKIE)
        current = await sessions.get(sid)
        if current is not None and not current.csrf_ok(request.headers.get(CSRF_HEADER)):
            return error_response("DENIED", f"logging out needs the {CSRF_HEADER} header", 403)
        await sessions.end(sid)
    response = web.json_response(_state(sessions is not None, None, None))
    response.del_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="Strict")
    return response


#: Public: a login is what it offers; it checks the password itself, through the guard.
ROUTES = (
    Route("GET", PATH, whoami, Access.PUBLIC),
    Route("POST", PATH, login, Access.PUBLIC),
    Route("DELETE", PATH, logout, Access.PUBLIC),
)
