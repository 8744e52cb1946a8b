"""``http.auth.failLimit``: failed logins allowed per client address and minute.

On by default (:data:`DEFAULT_FAIL_LIMIT`), with or without ``http.ratelimit``: each
wrong password costs a bcrypt check, so guessing is also a way to burn the server's CPU.
An address gets a bucket of ``limit`` failures that refills at ``limit`` a minute. Once it
is empty, the address's logins are answered 429 without a bcrypt check, except
credentials that need none: a password that passed a check in the last minute (the
htpasswd cache) and API keys. So a client already logged in keeps working from an
address an attacker shares; successful logins never take from the bucket.

The table holds at most :data:`MOST_ADDRESSES` addresses; beyond that the one seen least
recently is forgotten (it gets a full bucket when it comes back).
"""

from __future__ import annotations

import math
from collections import OrderedDict

from dockyard.config.auth import DEFAULT_FAIL_LIMIT

#: Addresses remembered at once (about 100 bytes each).
MOST_ADDRESSES = 65536
_PERIOD = 60.0


class FailedLogins:
    """Token buckets of failed logins, keyed by client address, least recent evicted."""

    def __init__(self, limit: int = DEFAULT_FAIL_LIMIT, most: int = MOST_ADDRESSES) -> None:
        self.limit = limit
        self.most = most
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def _tokens(self, address: str, now: float) -> float:
        tokens, stamp = self._buckets.get(address, (float(self.limit), now))
        return min(float(self.limit), tokens + (now - stamp) * self.limit / _PERIOD)

    def wait(self, address: str, now: float) -> int:
        """0 when ``address`` may try a password now, else whole seconds until it may."""
        if not self.enabled or address not in self._buckets:
            return 0
        tokens = self._tokens(address, now)
        if tokens >= 1.0:
            return 0
        return max(1, math.ceil((1.0 - tokens) * _PERIOD / self.limit))

    def failed(self, address: str, now: float) -> None:
        """Count one failed login from ``address``."""
        if not self.enabled:
            return
        tokens = max(0.0, self._tokens(address, now) - 1.0)
        self._buckets[address] = (tokens, now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.most:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
