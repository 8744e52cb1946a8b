"""The aiohttp side of authentication and access control.

For every request this decides, before any handler runs: who is asking
(:class:`~dockyard.auth.authenticator.Authenticator`), what the endpoint needs
(:mod:`dockyard.auth.actions`), and whether that is allowed
(:class:`~dockyard.auth.access.AccessPolicy`). Missing or wrong credentials get 401 with
a challenge (``Basic realm=...`` or the token server's ``Bearer ...``); valid ones
without the right get 403 ``DENIED``. A bearer token lacking a scope gets 401 with
``error="insufficient_scope"``, so the client fetches a better token, as the Docker
token spec has it. Installed only when some auth is configured.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from dockyard.api.access import ATTEMPTED_USER, IDENTITY, PERMITS, READ_FILTER
from dockyard.api.common import API_VERSION_HEADER, STORE
from dockyard.api.errors import Handler, error_response
from dockyard.auth.access import CREATE, READ, UPDATE, AccessPolicy
from dockyard.auth.actions import Kind, Target, classify
from dockyard.auth.authenticator import Authenticator, AuthFailed
from dockyard.auth.bearer import CATALOG_SCOPE, BearerVerifier, scope_for
from dockyard.auth.identity import Identity
from dockyard.auth.sessions import COOKIE, CSRF_HEADER, Sessions
from dockyard.oci.names import validate_name
from dockyard.storage.errors import StorageError

log = logging.getLogger("dockyard.auth")


class Guard:
    """The middleware: one instance per app, holding the configured mechanisms."""

    def __init__(self, authenticator: Authenticator, realm: str, fail_delay: float = 0.0) -> None:
        self.auth = authenticator
        self.policy: AccessPolicy = authenticator.policy
        self.bearer: BearerVerifier | None = authenticator.bearer
        self.realm = realm
        self.fail_delay = fail_delay
        #: The web UI's browser sessions, when the UI is on (see ``dockyard.ui``).
        self.sessions: Sessions | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        target = _target(request)
        if target is None:
            return await handler(request)
        authorization = request.headers.getall("Authorization", [])
        session = None
        if not authorization and self.sessions is not None:
            session = self.sessions.current(request.cookies.get(COOKIE), self.auth.htpasswd)
        try:
            if session is not None:
                who = session.identity
                if request.method not in ("GET", "HEAD", "OPTIONS") and not session.csrf_ok(
                    request.headers.get(CSRF_HEADER)
                ):
                    return _denied(f"a write with a session cookie needs the {CSRF_HEADER} header")
            else:
                who = await self.auth.identify(authorization, _peercert(request))
        except AuthFailed as exc:
            request[ATTEMPTED_USER] = exc.user
            log.info("login failed from %s: %s", request.remote, exc.reason)
            if self.fail_delay:
                await asyncio.sleep(self.fail_delay)
            error = "invalid_token" if exc.token else None
            return self._unauthorized(target, error, "authentication failed")
        request[IDENTITY] = who
        denied = self._authorize(request, target, who)
        if denied is not None:
            return denied
        return await handler(request)

    def _authorize(
        self, request: web.Request, target: Target, who: Identity
    ) -> web.Response | None:
        """None when ``who`` may go on; else the 401 or 403 to answer."""
        if target.kind is Kind.BASE:
            if who.anonymous and self.auth.can_log_in:
                return self._unauthorized(target, None, "authentication required")
            return None
        if target.kind is Kind.APIKEYS:
            if who.anonymous:
                return self._unauthorized(target, None, "authentication required")
            if who.method not in ("htpasswd", "mtls"):
                return _denied("API keys are managed after logging in with a password")
            return None
        if target.kind is Kind.CATALOG:
            return self._catalog(request, target, who)
        if target.kind is Kind.SEARCH:
            return self._search(request, target, who)
        assert target.repo is not None and target.action is not None
        repo = validate_name(target.repo)  # InvalidName: 400 NAME_INVALID, never a guess
        action = target.action
        if action == CREATE and target.tags and self._tag_exists(request, repo, target.tags):
            action = UPDATE
        if not self.policy.allows(who, action, repo):
            if who.grants is not None or who.anonymous:
                scopes = [scope_for(action, repo)]
                source = request.query.get("from")
                if self.bearer is not None and source and "mount" in request.query:
                    scopes.append(scope_for(READ, source))
                error = "insufficient_scope" if who.grants is not None else None
                return self._unauthorized(target, error, "authentication required", scopes)
            return _denied(f"{who.user} may not {action} {repo}")
        request[READ_FILTER] = self.policy.reader(who)
        return None

    def _catalog(self, request: web.Request, target: Target, who: Identity) -> web.Response | None:
        if self.bearer is not None:
            granted = (who.grants or {}).get(("registry", "catalog"), frozenset())
            if "*" not in granted:
                error = "insufficient_scope" if who.grants is not None else None
                return self._unauthorized(target, error, "authentication required", [CATALOG_SCOPE])
            return None
        if who.anonymous and self.auth.can_log_in and not self.policy.anonymous_allowed():
            return self._unauthorized(target, None, "authentication required")
        request[READ_FILTER] = self.policy.reader(who)
        return None

    def _search(self, request: web.Request, target: Target, who: Identity) -> web.Response | None:
        """Open to whoever may use the catalog; every answer is filtered by read access."""
        if who.anonymous and self.auth.can_log_in and not self.policy.anonymous_allowed():
            return self._unauthorized(target, None, "authentication required")
        policy = self.policy
        request[READ_FILTER] = policy.reader(who)
        request[PERMITS] = lambda action, repo: policy.allows(who, action, repo)
        return None

    @staticmethod
    def _tag_exists(request: web.Request, repo: str, tags: tuple[str, ...]) -> bool:
        """Whether a manifest PUT would move a tag (zot's ``update``)."""
        services = request.app[STORE].for_repo(repo)
        try:
            existing = services.root.index(repo).tags()
        except StorageError:
            return False  # no repository yet: every tag is new
        return any(tag in existing for tag in tags)

    def _unauthorized(
        self,
        target: Target,
        error: str | None,
        message: str,
        scopes: list[str] | None = None,
    ) -> web.Response:
        if self.bearer is not None:
            challenge = self.bearer.challenge(scopes or [], error)
        else:
            challenge = f'Basic realm="{self.realm}"'
        headers = {**API_VERSION_HEADER, "WWW-Authenticate": challenge}
        detail: Any = None
        if scopes:
            detail = [_access_detail(scope) for scope in scopes]
        return error_response("UNAUTHORIZED", message, 401, detail, headers)


def _denied(message: str) -> web.Response:
    return error_response(
        "DENIED",
        "requested access to the resource is denied",
        403,
        {"reason": message},
        dict(API_VERSION_HEADER),
    )


def _access_detail(scope: str) -> dict[str, str]:
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return {"Type": kind, "Name": name, "Action": actions}


def _target(request: web.Request) -> Target | None:
    info = request.match_info
    resource = info.route.resource
    route = resource.canonical if resource is not None else None
    return classify(
        request.method,
        request.path,
        route,
        info.get("name"),
        info.get("reference"),
        request.query.getall("tag", []),
    )


def _peercert(request: web.Request) -> Any:
    transport = request.transport
    return None if transport is None else transport.get_extra_info("peercert")
