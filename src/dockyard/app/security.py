"""Builds the security mechanisms a config turns on; nothing when none is.

Their middlewares are returned (:class:`Security`), not installed: ``app.middleware``
puts them in the chain, in order. With no ``http.auth``, ``http.accessControl``,
``http.tls.cacert``, ``http.ratelimit`` or ``log.audit``, not one of them exists and
requests cost what they did before.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from dockyard.api.apikey_handlers import API_KEYS
from dockyard.api.audit import AuditLog
from dockyard.api.auth_middleware import Guard
from dockyard.api.ratelimit import RateLimiter
from dockyard.api.routes import API_KEY_ROUTES
from dockyard.app.auth_stores import key_store
from dockyard.app.reload import RELOAD_HOOKS, ReloadHook
from dockyard.app.server_tls import ServerTls
from dockyard.auth.access_policy import AccessPolicy
from dockyard.auth.apikey_store import KeyStore
from dockyard.auth.authenticator import Authenticator
from dockyard.auth.bearer import BearerVerifier
from dockyard.auth.checkpool import PasswordPool
from dockyard.auth.failures import FailedLogins
from dockyard.auth.htpasswd import Htpasswd
from dockyard.auth.keypurge import KeyPurger
from dockyard.config import Config
from dockyard.config.auth import DEFAULT_FAIL_LIMIT
from dockyard.ext import search
from dockyard.storage.store import Store
from dockyard.web.app_keys import STORE
from dockyard.web.routing import add_routes

log = logging.getLogger("dockyard.auth")

SERVER_TLS: web.AppKey[ServerTls] = web.AppKey("server_tls", ServerTls)
#: The auth middleware, when auth is configured (the web UI logs in through it).


def tls_context(app: web.Application) -> ssl.SSLContext | None:
    """The context to serve HTTPS with, or None for plain HTTP."""
    tls = app.get(SERVER_TLS)
    return tls.context if tls is not None else None


def _authenticator(
    config: Config,
    store: Store,
    keys: KeyStore | None = None,
    pool: PasswordPool | None = None,
) -> Authenticator | None:
    http = config.http
    auth = http.auth
    mtls = http.tls is not None and http.tls.cacert is not None
    htpasswd = bearer = None
    if auth is not None and auth.bearer is not None:
        b = auth.bearer
        bearer = BearerVerifier(b.realm, b.service, b.cert, b.issuer)
        if auth.htpasswd is not None:
            log.warning("http.auth.bearer is set: htpasswd logins are not accepted")
        if http.access_control is not None:
            log.warning("http.auth.bearer is set: the tokens' scopes decide, not accessControl")
    elif auth is not None and auth.htpasswd is not None:
        htpasswd = Htpasswd(auth.htpasswd.path, pool)
    if htpasswd is None and bearer is None and not mtls and http.access_control is None:
        return None
    policy = AccessPolicy(None if bearer is not None else http.access_control)
    if auth is None or not auth.apikey:
        keys = None
    elif keys is None:
        keys = key_store(config, store)
    return Authenticator(policy, htpasswd, keys, bearer, mtls and bearer is None)


@dataclass(frozen=True)
class Security:
    """The security middlewares a config asks for (None: that one is off)."""

    audit: AuditLog | None
    limiter: RateLimiter | None
    guard: Guard | None


def install_security(app: web.Application, config: Config) -> Security:
    """Set up what ``config`` asks for: TLS, rate limits, auth and access control, audit."""
    http = config.http
    pool = PasswordPool()
    authenticator = _authenticator(config, app[STORE], pool=pool)
    if http.tls is not None:
        # Client certificates are required only when they are the one way in.
        only_mtls = (
            authenticator is not None
            and authenticator.mtls
            and authenticator.htpasswd is None
            and not authenticator.policy.anonymous_allowed()
        )
        app[SERVER_TLS] = ServerTls(
            http.tls.cert, http.tls.key, http.tls.cacert, only_mtls, http.tls.crl
        )
        app.cleanup_ctx.append(_watch_certificates)
        app[RELOAD_HOOKS].append(_tls_reloader(app[SERVER_TLS]))
    audit = None
    if config.log.audit:
        audit = audit_log = AuditLog(config.log.audit)
        app.on_cleanup.append(lambda _: _close(audit_log))
    limiter = RateLimiter(http.ratelimit) if http.ratelimit is not None else None
    guard = None
    if authenticator is not None:
        fail_delay = http.auth.fail_delay if http.auth is not None else 0.0
        failures = FailedLogins(_fail_limit(config))
        guard = Guard(authenticator, http.realm, fail_delay, failures)
        guard.tls = app.get(SERVER_TLS)
        # The search API's paths need its access even with search off, as the API keys'.
        guard.known.update({route.path: route for route in search.ROUTES})
        app.cleanup_ctx.append(pool.lifetime)
    purger = None
    if guard is not None and authenticator is not None and authenticator.keys is not None:
        app[API_KEYS] = authenticator.keys
        add_routes(app, API_KEY_ROUTES)
        keys = authenticator.keys
        purger = KeyPurger(keys, lambda: guard.auth, _purge_interval(config))
        purger.lease = app[STORE].lease
        app.cleanup_ctx.append(purger.lifetime)
        app.on_cleanup.append(lambda _: _close(keys))
    app[RELOAD_HOOKS].append(_reloader(app[STORE], guard, limiter, pool, purger))
    return Security(audit, limiter, guard)


def _fail_limit(config: Config) -> int:
    auth = config.http.auth
    return auth.fail_limit if auth is not None else DEFAULT_FAIL_LIMIT


def _purge_interval(config: Config) -> float:
    auth = config.http.auth
    return auth.apikey_purge_interval if auth is not None else 60.0


def _reloader(
    store: Store,
    guard: Guard | None,
    limiter: RateLimiter | None,
    pool: PasswordPool,
    purger: KeyPurger | None,
) -> ReloadHook:
    """A config reload swaps the mechanisms inside the installed middlewares.

    aiohttp freezes the middleware list at start, so what was off at start (no middleware)
    cannot be switched on live: that is named as needing a restart, never half-applied.
    """

    def apply(old: Config, new: Config) -> None:
        if new.http.ratelimit != old.http.ratelimit:
            if limiter is None or new.http.ratelimit is None:
                log.warning("http.ratelimit: switching rate limits on or off needs a restart")
            else:
                limiter.configure(new.http.ratelimit)
                log.info("http.ratelimit reloaded")
        auth_keys = ("auth", "access_control", "realm")
        if all(getattr(new.http, k) == getattr(old.http, k) for k in auth_keys):
            return
        replacement = None
        if guard is not None:
            replacement = _authenticator(new, store, keys=guard.auth.keys, pool=pool)
        if guard is None or replacement is None:
            log.warning("http.auth/accessControl: switching auth on or off needs a restart")
            return
        guard.auth, guard.policy, guard.bearer = replacement, replacement.policy, replacement.bearer
        guard.realm = new.http.realm
        guard.fail_delay = new.http.auth.fail_delay if new.http.auth is not None else 0.0
        guard.failures.limit = _fail_limit(new)
        if purger is not None:
            purger.every = _purge_interval(new)
        log.info("http.auth and http.accessControl reloaded")

    return apply


def _tls_reloader(tls: ServerTls) -> ReloadHook:
    """SIGHUP (or any config reload) looks at the TLS files at once, not in 2 s.

    New paths for the same files are taken up too. Switching client certificates or
    the CRL on or off changes who may connect, which only a restart applies.
    """

    async def apply(old: Config, new: Config) -> None:
        t = new.http.tls
        if t is not None and (t.cacert is None) == (tls.cacert is None):
            if (t.crl is None) == (tls.crl is None):
                tls.cert, tls.key, tls.cacert, tls.crl = t.cert, t.key, t.cacert, t.crl
            else:
                log.warning("http.tls.crl: switching the CRL on or off needs a restart")
        elif new.http.tls != old.http.tls:
            log.warning("http.tls: switching TLS or client certificates needs a restart")
        await asyncio.to_thread(tls.reload_if_changed)

    return apply


async def _close(thing: AuditLog | KeyStore) -> None:
    thing.close()


async def _watch_certificates(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SERVER_TLS].watch(), name="tls-reload")
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
