"""``http.auth.failLimit``: failed logins allowed per client address and minute.

On by default (:data:`DEFAULT_FAIL_LIMIT`), with or without ``http.ratelimit``: each
wrong password costs a bcrypt check, so guessing is also a way to burn the server's CPU.
An address gets a bucket of ``limit`` failures that refills at ``limit`` a minute. A
password check takes a token when it starts and gives it back when the login succeeds,
so checks still running count too: a flood of concurrent guesses cannot queue more than
``limit`` checks before the first answer. Once the bucket is empty, the address's logins
are answered 429 without a bcrypt check, except
credentials that a guess cannot be: a user and password that passed a check in the
last hour (which is then checked as usual, from the one-minute cache or with bcrypt),
and API keys (a hash lookup). So a client already logged in keeps working from an
address an attacker shares; successful logins never take from the bucket.

The table holds at most :data:`MOST_ADDRESSES` addresses; beyond that the one seen least
recently is forgotten (it gets a full bucket when it comes back).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from dockyard.config.auth import DEFAULT_FAIL_LIMIT

#: Seconds a 429 for too many failed logins waits before it is sent. A flood that retries
#: as soon as it is answered then sends a request a second per connection, instead of
#: thousands that each cost the event loop a little; waiting costs the server nothing.
THROTTLED_ANSWER_DELAY = 1.0
#: Addresses remembered at once (about 100 bytes each).
MOST_ADDRESSES = 65536
_PERIOD = 60.0

#: Asked just before a password check would start: True lets it run (and takes a token).
Admit = Callable[[], bool]


class Throttled(Exception):
    """The client is over its failed-login limit and these credentials would need a
    password check (bcrypt) to tell; answered 429 without running it."""


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

    def take(self, address: str, now: float) -> bool:
        """Take a token for a password check about to start; False when none is left."""
        if not self.enabled:
            return True
        tokens = self._tokens(address, now)
        if tokens < 1.0:
            return False
        self._store(address, tokens - 1.0, now)
        return True

    def refund(self, address: str, now: float) -> None:
        """The check :meth:`take` paid for succeeded: a good login costs nothing."""
        if self.enabled and address in self._buckets:
            self._store(address, self._tokens(address, now) + 1.0, now)

    def failed(self, address: str, now: float) -> None:
        """Count one failed login that took no token (a malformed header, a wrong key)."""
        if self.enabled:
            self._store(address, max(0.0, self._tokens(address, now) - 1.0), now)

    def _store(self, address: str, tokens: float, now: float) -> None:
        self._buckets[address] = (min(float(self.limit), tokens), now)
        self._buckets.move_to_end(address)
        while len(self._buckets) > self.most:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
