"""``http.ratelimit``: requests per second per client address, 429 beyond.

A token bucket per address holds one second's worth of requests (so a client may burst
``rate`` requests at once, as a pull of many layers does) and refills continuously. A
method with its own rate is counted in a bucket of its own as well, and must pass both.
Over the limit: 429 ``TOOMANYREQUESTS`` with ``Retry-After``, the seconds until the next
request would pass. The address is the peer's: put the limit on the proxy when there is
one, since every client then arrives from the proxy's address.

A client is an IPv4 address, or an IPv6 /64: a single host is routinely handed a whole
/64 and can pick a fresh address from it per request, so counting IPv6 addresses one by
one would let it sidestep the limit. The table holds at most ``maxClients`` buckets, the
least recently seen forgotten first (it comes back with a full bucket), so a flood from
many addresses costs bounded memory instead of growing until the buckets refill.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict

from aiohttp import web

from dockyard.config.http import DEFAULT_MAX_CLIENTS, RateLimit
from dockyard.web.spec_errors import Handler, error_response

_PRUNE_EVERY = 4096
#: IPv6 clients are counted by this prefix length.
IPV6_PREFIX = 64


def client_key(address: str) -> str:
    """The bucket a peer address counts in: itself for IPv4, its /64 for IPv6.

    An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 peer) is its
    IPv4 address; anything that is not an IP address (a Unix socket) is itself.
    """
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 zone id
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


class Buckets:
    """Token buckets keyed by client, least recently seen first, at most ``max_clients``."""

    def __init__(self, rate: float, max_clients: int = DEFAULT_MAX_CLIENTS) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._calls = 0

    @property
    def clients(self) -> int:
        """How many clients have a bucket now (never more than ``max_clients``)."""
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """0 when a request may pass now (and count it), else seconds to wait."""
        known = self._buckets.pop(key, None)
        tokens, stamp = known if known is not None else (self.capacity, now)
        tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
        self._calls += 1
        if self._calls % _PRUNE_EVERY == 0:
            self._prune(now)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[key] = (tokens, now)  # re-inserted: now the most recently seen
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return wait

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: they hold nothing a new one would not."""
        full_after = self.capacity / self.rate
        self._buckets = OrderedDict(
            (k, v) for k, v in self._buckets.items() if now - v[1] < full_after
        )


class RateLimiter:
    def __init__(self, config: RateLimit) -> None:
        self.configure(config)

    def configure(self, config: RateLimit) -> None:
        """(Re)build the buckets; a reload starts every client with a full bucket."""
        cap = config.max_clients
        self.overall = Buckets(config.rate, cap) if config.rate else None
        self.methods = {m.method: Buckets(m.rate, cap) for m in config.methods}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        client = client_key(request.remote or "")
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
