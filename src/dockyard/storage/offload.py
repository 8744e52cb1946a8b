"""Where a blocking storage call runs: inline on a local root, in a thread on a bucket.

On the local disk most calls of a request (a ``stat``, a small read) take microseconds,
and a thread hop would cost more than the call; the tuned request paths keep them inline.
On object storage the same call is a network round trip, which must never stall the
event loop, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_T = TypeVar("_T")
_P = ParamSpec("_P")


async def run_blocking(
    remote: bool, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """``call(*args)``: in a thread when ``remote`` (the root is on object storage)."""
    if remote:
        return await asyncio.to_thread(call, *args, **kwargs)
    return call(*args, **kwargs)
