"""``http.ratelimit``: requests per second per client address, 429 beyond.

A token bucket per address holds one second's worth of requests (so a client may burst
``rate`` requests at once, as a pull of many layers does) and refills continuously. A
method with its own rate is counted in a bucket of its own as well, and must pass both.
Over the limit: 429 ``TOOMANYREQUESTS`` with ``Retry-After``, the seconds until the next
request would pass. The address is the peer's: put the limit on the proxy when there is
one, since every client then arrives from the proxy's address.
"""

from __future__ import annotations

import math
import time

from aiohttp import web

from dockyard.api.errors import Handler, error_response
from dockyard.config.ratelimit import RateLimit

_PRUNE_EVERY = 4096


class Buckets:
    """Token buckets keyed by client address; memory stays bounded by active clients."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._calls = 0

    def take(self, key: str, now: float) -> float:
        """0 when a request may pass now (and count it), else seconds to wait."""
        tokens, stamp = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune(now)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: they hold nothing a new one would not."""
        full_after = self.capacity / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class RateLimiter:
    def __init__(self, config: RateLimit) -> None:
        self.configure(config)

    def configure(self, config: RateLimit) -> None:
        """(Re)build the buckets; a reload starts every client with a full bucket."""
        self.overall = Buckets(config.rate) if config.rate else None
        self.methods = {m.method: Buckets(m.rate) for m in config.methods}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        client = request.remote or ""
        now = time.monotonic()
        wait = self.overall.take(client, now) if self.overall else 0.0
        per_method = self.methods.get(request.method)
        if per_method is not None:
            wait = max(wait, per_method.take(client, now))
        if wait > 0:
            return error_response(
                "TOOMANYREQUESTS",
                "too many requests from this address",
                429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return await handler(request)
