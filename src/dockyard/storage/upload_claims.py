"""Which digest an upload is storing right now, across the worker processes of a root.

When 20 clients push the same base layer at once, one of them stores it and the others
only need to hash what they send (see ``duplicate_uploads``). To know that "one of them"
is already at it, an upload whose digest is known before its bytes (a monolithic PUT or
POST with ``?digest=``) claims the digest while it stores them: an ``flock`` on a lock
file of the root's private folder, which the kernel releases with its holder's process,
so a worker killed with ``-9`` leaves no claim behind.

The lock files are stripes by digest (``paths.claim_key``), like publishes': a fixed
number of files, never one per blob ever pushed, and never deleted (removing a lock file
another process waits on would let two holders in). The holder writes into its stripe
which digest it stores, its session file and the length its client declared, so a
duplicate tells its own digest from another one of the same stripe and sees the holder's
progress (its session file growing). That record is a hint only: read while it is being
rewritten, or stale, it costs one lost dedupe or a wait that ends when the holder lets
go, never a wrong blob (the bytes a duplicate keeps are always hashed and compared).
flock is local to one machine, like the local backend: replicas sharing locks through
Redis do not claim (their uploads store their own bytes, as before).
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.locks import open_lock_file, try_flock
from dockyard.storage.paths import claim_key, lock_path

#: The longest record a holder writes (a session path is under the root: well below).
_RECORD_MAX = 8192


@dataclass(frozen=True)
class Claimant:
    """What a holder wrote into its stripe: the digest it stores, and where."""

    digest: str
    session: Path
    #: The bytes its client declared (Content-Length); None when it did not.
    length: int | None


def _parse(raw: bytes) -> Claimant | None:
    try:
        doc = json.loads(raw)
        length = doc["length"]
        return Claimant(
            str(doc["digest"]), Path(doc["session"]), None if length is None else int(length)
        )
    except (ValueError, KeyError, TypeError):
        return None  # empty, being rewritten, or not a record


class ClaimStripe:
    """One process's handle on the stripe of a digest: take it, or see who holds it.

    Every call is a system call or two on a small local file, cheap enough for the
    event loop (like taking any of the root's flocks).
    """

    def __init__(self, root: Path, digest: Digest) -> None:
        self.digest = digest
        self._fd: int | None = open_lock_file(lock_path(root, claim_key(digest)))
        self.held = False

    def take(self, session: Path, length: int | None) -> bool:
        """Claim the digest for the upload into ``session``; False when another upload
        (of this process or another) holds the stripe."""
        assert self._fd is not None
        if not self.held:
            if not try_flock(self._fd):
                return False
            self.held = True
        record = json.dumps(
            {"digest": str(self.digest), "session": str(session), "length": length}
        ).encode()
        os.pwrite(self._fd, record, 0)
        os.ftruncate(self._fd, len(record))
        return True

    def try_hold(self) -> bool:
        """Take the stripe without writing a record (a waiter checking it is free)."""
        assert self._fd is not None
        if not self.held:
            self.held = try_flock(self._fd)
        return self.held

    def holder(self) -> Claimant | None:
        """The record of whoever holds the stripe, or None when it cannot be read."""
        assert self._fd is not None
        return _parse(os.pread(self._fd, _RECORD_MAX, 0))

    def let_go(self) -> None:
        """Release the stripe, keeping the handle (the waiter found the copy stored)."""
        if self.held and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self.held = False

    def close(self) -> None:
        """Release the stripe, if held, and the handle; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None
        self.held = False
