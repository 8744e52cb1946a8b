"""The middleware chain of the registry's application, outermost first: built here only.

Each middleware is made by the module that owns its concern; this module alone decides
their order, and no other module touches ``app.middlewares``. A middleware that a config
leaves off is absent, not a no-op: with no ``log.audit``, metrics, ``http.ratelimit`` or
auth, a request passes through the error middleware only; without a ``cacheDriver``, no
freshness middleware.
"""

from __future__ import annotations

from aiohttp.typedefs import Middleware

from dockyard.app.security import Security
from dockyard.ext.metrics import uploads_in_flight
from dockyard.web.freshness import freshness_middleware
from dockyard.web.spec_errors import errors_middleware


def middleware_chain(security: Security, metrics_on: bool, shared: bool) -> list[Middleware]:
    """The middlewares, outermost (first to see a request, last to see its answer) first."""
    chain: list[Middleware] = []
    if security.audit is not None:
        # Outermost, so it records every final status: 401s, 403s and 429s included.
        chain.append(security.audit.middleware)
    if metrics_on:
        # Counts upload requests while their bodies stream (everything else the metrics
        # record after the response, from the access logger).
        chain.append(uploads_in_flight)
    # Every failure raised inside it becomes the spec's JSON error body.
    chain.append(errors_middleware)
    if security.limiter is not None:
        # Cheap, and before any password check, so it also slows guessing.
        chain.append(security.limiter.middleware)
    if security.guard is not None:
        # Authentication, then access control, from the route the request matched.
        chain.append(security.guard.middleware)
    if shared:
        # Innermost: a refused request costs no Redis round trip. Fetches the shared
        # change counters before the handler, publishes this replica's after it.
        chain.append(freshness_middleware)
    return chain
