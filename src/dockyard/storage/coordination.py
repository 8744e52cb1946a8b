"""What the processes serving one root agree on, as protocols: the per-key locks, the
background lease and the change counter.

Two sets implement them. On one machine, worker processes share the root's private
folder: an ``flock`` per key (``locks.py``), an ``flock`` lease (``lease.py``) and an
mmap'd counter (``changes.py``). Replicas on several machines share a Redis instead
(``storage/shared/``): keys with an expiry, renewed while held, a fencing check before
each publish, and a counter every request compares. Storage code sees only these
protocols; which set a root uses is decided once, where the store is built
(:class:`Coordination`, injected into ``StorageRoot``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from dockyard.storage.dedupe.locations import LocationMap


class HeldLock(Protocol):
    """A lock while it is held."""

    async def fence(self) -> None:
        """Just before a publish step (a rename into place, a delete): raise ``LockLost``
        unless this holder still holds the lock, so a holder whose lock expired (a paused
        or partitioned replica) never overwrites what a later holder wrote."""


class KeyLocks(Protocol):
    """Exclusive locks by name (a repository, a digest, the GC pass of a root)."""

    #: Told how long each acquisition waited (metrics); None costs nothing.
    on_wait: Callable[[float], None] | None

    def hold(self, key: str) -> AbstractAsyncContextManager[HeldLock]: ...


class Changes(Protocol):
    """A root's change counter: ``bump()`` after a change is in place, ``publish()`` before
    it is acknowledged, ``refresh()`` before a cache is trusted, ``seen()`` to compare."""

    def seen(self) -> bytes: ...

    def bump(self) -> None: ...

    async def refresh(self) -> None: ...

    async def publish(self) -> None: ...

    def close(self) -> None: ...


class BackgroundLease(Protocol):
    """Held by one process of all those serving a store; it runs the periodic jobs."""

    @property
    def held(self) -> bool: ...

    async def run(self, job: Callable[[], Awaitable[None]]) -> None: ...

    def release(self) -> None: ...


@dataclass
class Coordination:
    """A root's shared pieces, built by whoever builds the store (``app/storage_roots``).

    ``StorageRoot`` takes one instead of making the local set, so an object-store backend
    and a Redis can be combined in any way without the root knowing which it has.
    """

    locks: KeyLocks
    changes: Changes
    #: Opens the root's dedupe map (the root's path in, the map out).
    open_map: Callable[[Path], LocationMap]
    #: The store's lease; only the default root's is used.
    lease: BackgroundLease
    #: Answers None when the shared service answers, else why not (``/readyz``).
    check: Callable[[], Awaitable[str | None]]
    #: Releases what it holds (the lease, client connections) at shutdown.
    close: Callable[[], None]
