"""The aiohttp side of authentication and access control.

For every request this decides, before any handler runs: who is asking
(:class:`~dockyard.auth.authenticator.Authenticator`), what the endpoint needs
(the :class:`~dockyard.web.routing.Route` the request matched), and whether that is allowed
(:class:`~dockyard.auth.access_policy.AccessPolicy`). Missing or wrong credentials get 401 with
a challenge (``Basic realm=...`` or the token server's ``Bearer ...``); valid ones
without the right get 403 ``DENIED``. A bearer token lacking a scope gets 401 with
``error="insufficient_scope"``, so the client fetches a better token, as the Docker
token spec has it. A client address over its failed-login limit
(:mod:`dockyard.auth.failures`) gets 429 ``TOOMANYREQUESTS`` with ``Retry-After``
for any login that would need a password check. Installed only when some auth is
configured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from aiohttp import web

from dockyard.api.request_params import API_VERSION_HEADER, repo_name
from dockyard.api.routes import API_KEY_ROUTES
from dockyard.auth.access_policy import CREATE, READ, UPDATE, AccessPolicy
from dockyard.auth.authenticator import Authenticator, AuthFailed
from dockyard.auth.bearer import CATALOG_SCOPE, BearerVerifier, scope_for
from dockyard.auth.failures import THROTTLED_ANSWER_DELAY, FailedLogins, Throttled
from dockyard.auth.identity import Identity
from dockyard.auth.redact import loggable_name
from dockyard.auth.sessions import COOKIE, CSRF_HEADER, SessionStore
from dockyard.oci.names import InvalidName
from dockyard.storage.errors import StorageError
from dockyard.web.app_keys import STORE
from dockyard.web.request_keys import (
    ATTEMPTED_USER,
    ATTEMPTED_USER_HASH,
    CREATE_FILTER,
    IDENTITY,
    MAY_MOVE_TAG,
    PERMITS,
    READ_FILTER,
)
from dockyard.web.routing import Access, Route, Target, target_of
from dockyard.web.spec_errors import Handler, error_response

log = logging.getLogger("dockyard.auth")


class SessionCheck(Protocol):
    """The server's TLS as the guard sees it (``dockyard.app.server_tls.ServerTls``)."""

    def stale_resumption(self, ssl_object: Any) -> bool:
        """Whether a resumed TLS session predates the client CA or CRL now in force."""


class Guard:
    """The middleware: one instance per app, holding the configured mechanisms."""

    def __init__(
        self,
        authenticator: Authenticator,
        realm: str,
        fail_delay: float = 0.0,
        failures: FailedLogins | None = None,
    ) -> None:
        self.auth = authenticator
        self.policy: AccessPolicy = authenticator.policy
        self.bearer: BearerVerifier | None = authenticator.bearer
        self.realm = realm
        self.fail_delay = fail_delay
        self.failures = failures if failures is not None else FailedLogins()
        #: The server's TLS, when it serves HTTPS: to spot sessions older than its CA.
        self.tls: SessionCheck | None = None
        #: Paths that need their access even where their routes are not installed (the
        #: API keys, the search API), so a caller learns nothing from a 404 it may not see.
        self.known: dict[str, Route] = {r.path: r for r in API_KEY_ROUTES}
        #: The web UI's browser sessions, when the UI is on (see ``dockyard.ui``).
        self.sessions: SessionStore | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        target = target_of(request, self.known)
        if target is None:
            return await handler(request)
        client = request.remote or ""
        authorization = request.headers.getall("Authorization", [])
        session = None
        if not authorization and self.sessions is not None:
            cookie = request.cookies.get(COOKIE)
            session = await self.sessions.current(cookie, self.auth.htpasswd)
        try:
            if session is not None:
                who = session.identity
                if request.method not in ("GET", "HEAD", "OPTIONS") and not session.csrf_ok(
                    request.headers.get(CSRF_HEADER)
                ):
                    return _denied(f"a write with a session cookie needs the {CSRF_HEADER} header")
            else:
                peercert = _peercert(request)
                if peercert and not authorization and self._stale_certificate(request):
                    raise AuthFailed("TLS session resumed from before the client CA or CRL changed")
                who = await self.identify(client, authorization, peercert)
        except (AuthFailed, Throttled) as exc:
            failed = exc if isinstance(exc, AuthFailed) else exc.__cause__
            if isinstance(failed, AuthFailed):
                real = failed.user is not None and self.auth.is_user(failed.user)
                request[ATTEMPTED_USER], request[ATTEMPTED_USER_HASH] = loggable_name(
                    failed.user, real
                )
            if isinstance(exc, Throttled):
                return await self.too_many(client)
            log.info("login failed from %s: %s", request.remote, exc.reason)
            if self.fail_delay:
                await asyncio.sleep(self.fail_delay)
            error = "invalid_token" if exc.token else None
            return self._unauthorized(target, error, "authentication failed")
        request[IDENTITY] = who
        moves = await self._moves_tag(request, target) if target.tags else False
        denied = self._authorize(request, target, who, moves)
        if denied is not None:
            return denied
        return await handler(request)

    async def identify(
        self, client: str, authorization: list[str], peercert: Any = None
    ) -> Identity:
        """Who sent these credentials, with the failed-login brake of address ``client``.

        Every password check goes through here (registry requests and the UI's login), so
        no door escapes the limit. Raises :class:`AuthFailed` for bad credentials, counted
        against ``client``, and :class:`Throttled` when ``client`` is over its limit: before
        a password check would start, or after a failure that needed none (its cause is
        then that :class:`AuthFailed`, so the audit log still names the attempt).
        """
        took = False

        def admit() -> bool:
            nonlocal took
            took = self.failures.take(client, time.monotonic())
            return took

        try:
            who = await self.auth.identify(authorization, peercert, admit)
        except AuthFailed as exc:
            if not took:
                if self.failures.wait(client, time.monotonic()):
                    raise Throttled() from exc  # over the limit: refused alike
                self.failures.failed(client, time.monotonic())
            raise
        if took:
            self.failures.refund(client, time.monotonic())
        return who

    async def too_many(self, client: str) -> web.Response:
        """429 with the seconds until ``client`` may try a password again, sent a little late."""
        await asyncio.sleep(THROTTLED_ANSWER_DELAY)
        wait = max(1, self.failures.wait(client, time.monotonic()))
        return error_response(
            "TOOMANYREQUESTS",
            "too many failed logins from this address",
            429,
            None,
            {**API_VERSION_HEADER, "Retry-After": str(wait)},
        )

    def _stale_certificate(self, request: web.Request) -> bool:
        """A client certificate that the current client CA and CRL never checked."""
        transport = request.transport
        if self.tls is None or transport is None or not self.auth.mtls:
            return False
        return self.tls.stale_resumption(transport.get_extra_info("ssl_object"))

    def _authorize(
        self, request: web.Request, target: Target, who: Identity, moves_tag: bool = False
    ) -> web.Response | None:
        """None when ``who`` may go on; else the 401 or 403 to answer."""
        if target.access is Access.METRICS:
            return self._metrics(target, who)
        if target.access is Access.LOGIN:
            if who.anonymous and self.auth.can_log_in:
                return self._unauthorized(target, None, "authentication required")
            return None
        if target.access is Access.OWN_KEYS:
            if who.anonymous:
                return self._unauthorized(target, None, "authentication required")
            if who.method not in ("htpasswd", "mtls"):
                return _denied("API keys are managed after logging in with a password")
            other = request.query.get("user")
            if other is not None and other != who.user:
                if request.method not in ("GET", "HEAD", "DELETE"):
                    return _denied("API keys are created by their own user")
                if not self.policy.is_admin(who):
                    return _denied(f"only an admin may manage the keys of {other}")
            return None
        if target.access is Access.CATALOG:
            return self._catalog(request, target, who)
        if target.access is Access.SEARCH:
            return self._search(request, target, who)
        assert target.repo is not None and target.action is not None
        repo = repo_name(request)  # InvalidName: 400 NAME_INVALID, never a guess
        action = target.action
        if action == CREATE and moves_tag:
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
        request[CREATE_FILTER] = lambda name: self.policy.allows(who, CREATE, name)
        if target.tags:
            # The check above saw the tags as they were before the body arrived; the
            # manifest handler asks again under the repository lock, when it publishes.
            policy = self.policy
            request[MAY_MOVE_TAG] = lambda tag: policy.allows(who, UPDATE, repo)
        return None

    def _metrics(self, target: Target, who: Identity) -> web.Response | None:
        """``/metrics`` names every repository: only who may see them all reads it."""
        if self.policy.may_read_metrics(who):
            return None
        if who.anonymous or who.grants is not None:
            error = "insufficient_scope" if who.grants is not None else None
            scopes = [CATALOG_SCOPE] if self.bearer is not None else None
            return self._unauthorized(target, error, "authentication required", scopes)
        return _denied(f"{who.user} may not read the metrics")

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
    async def _moves_tag(request: web.Request, target: Target) -> bool:
        """Whether a manifest PUT would move a tag (zot's ``update``), as things stand now.

        Only an early answer, so a client without ``update`` is refused before it sends
        its body; the tag may appear meanwhile, which storage checks when publishing.
        """
        try:
            repo = repo_name(request)
        except InvalidName:
            return False  # refused as NAME_INVALID by _authorize
        services = request.app[STORE].for_repo(repo)
        try:
            existing = (await services.root.read_index(repo)).tags()
        except StorageError:
            return False  # no repository yet: every tag is new
        return any(tag in existing for tag in target.tags)

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


def _peercert(request: web.Request) -> Any:
    transport = request.transport
    return None if transport is None else transport.get_extra_info("peercert")
