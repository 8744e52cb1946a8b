"""Duplicate uploads: bytes the root holds, or is storing right now, hashed and not stored.

When 20 clients push the same base layer at once, each used to write its 16 MiB to its
session file, hash it, and then find at the publish that the first had stored it already
(its own file deleted unread). An upload whose digest is known before its bytes (a
monolithic PUT or POST with ``?digest=``, on an empty session) now asks first:

- **Stored already** (the dedupe map names a copy): the copy is *pinned*, a hard link
  ``.uploads/.<id>.pin`` beside the session file, so no delete of its other names can
  take the bytes away. The body is hashed and written nowhere; when it matches, the pin
  is renamed into place under the repository's name (no byte written, nothing fsynced:
  the copy is durable already). When it does not, the pin goes and the client gets
  DIGEST_INVALID exactly as before.
- **Being stored** by another upload (a claim, see ``upload_claims``, in this worker
  process or another): the duplicate waits, its body unread (in the kernel's socket
  buffers and its client's), until that upload lets go. Then either the copy is stored,
  and it is pinned as above, or that upload failed (its client went away, its bytes did
  not match, its worker died), and the waiting duplicate takes the claim and stores its
  own bytes: a duplicate never fails because another upload did. A waiter whose holder
  stops making progress (its session file not growing for ``STALL`` seconds), or whose
  pace so far says the rest of its body needs more than ``AHEAD`` seconds to arrive,
  stops waiting and stores its own bytes, as before: a slow or stuck client never holds
  up the other pushes of its layer for long (a fast CI runner is not held to the pace of
  someone pushing the same base layer over a slow link).
- **Neither**: it claims the digest and stores its bytes as every upload did before.

Access: the pin may be of any repository's copy, which is the rule of a publish (a copy
is linked in once the pusher sent bytes that hash to the digest, so it learns nothing it
did not send); a HEAD or a mount, which bring no bytes, keep their rule (only copies of
repositories the caller may read). A mismatching body links nothing.

Only where the optimisation is safe and cheap: a local root with dedupe on and its
processes on one machine (claims are flocks). On object storage, with dedupe off, or for
a streamed (PATCH) upload whose digest comes only with its last request, every upload
stores its own bytes as before.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from dockyard.oci.digest import Digest
from dockyard.storage.paths import pin_path
from dockyard.storage.root import StorageRoot
from dockyard.storage.upload_claims import Claimant, ClaimStripe
from dockyard.storage.upload_session import Session

#: A holder whose session file has not grown for this long is left behind: its waiters
#: store their own bytes. Longer than ``uploads.ADMISSION_WAIT``, the time an upload of a
#: burst may wait for its turn before it writes a byte.
STALL = 5.0
#: A holder whose pace so far (watched for ``PACE_AFTER`` seconds at least) needs longer
#: than this for the rest of its declared body is left behind too: waiting would cost a
#: waiter more than storing its own bytes.
AHEAD = 3.0
PACE_AFTER = 0.5
#: A body declared smaller never waits for another upload of its digest: storing it
#: costs less than the wait could.
WAIT_MIN = 1024 * 1024
#: First and longest pause between two looks at a held claim, and how often the holder's
#: progress is read (a stat of its session file).
_FIRST_PAUSE = 0.001
_LONGEST_PAUSE = 0.02
_PROGRESS_EVERY = 0.1


@dataclass
class Plan:
    """What an upload does with its body: hash it against a pinned copy, or store it
    (holding the digest's claim, when it has one)."""

    pinned: bool = False
    claim: ClaimStripe | None = None

    def release(self) -> None:
        """Let the claim go (the upload is published or failed): a waiter goes on."""
        if self.claim is not None:
            self.claim.close()
            self.claim = None


class DuplicateUploads:
    """Decides, for one upload of a known digest, whether its bytes need storing."""

    def __init__(self, root: StorageRoot) -> None:
        self.root = root

    def applies(self, session: Session, start: int | None) -> bool:
        """True for a whole body onto an empty session, on a root where claims and pins
        work (local files, dedupe on, no replicas on other machines)."""
        root = self.root
        return (
            root.files.dedupe
            and not root.files.by_reference
            and not root.uploads.remote
            and root.coordination is None
            and session.size == 0
            and start in (None, 0)
        )

    async def _pin(self, session: Session, digest: Digest) -> bool:
        return await asyncio.to_thread(
            self.root.dedupe.pin_known_copy, digest, pin_path(session.path)
        )

    async def plan(self, session: Session, digest: Digest, declared: int | None) -> Plan:
        """Pin a stored copy, wait for an upload storing one, or claim the digest.

        ``declared``: the body's Content-Length, if the client sent one.
        """
        if await self._pin(session, digest):
            return Plan(pinned=True)
        if declared is not None and declared < WAIT_MIN:
            return Plan()
        stripe = ClaimStripe(self.root.path, digest)
        try:
            while True:
                if stripe.take(session.path, declared):
                    # The last holder may have published between the look above and here.
                    if await self._pin(session, digest):
                        stripe.close()
                        return Plan(pinned=True)
                    return Plan(claim=stripe)
                holder = stripe.holder()
                if holder is None or holder.digest != str(digest):
                    stripe.close()  # another digest of the stripe (or a record being written)
                    return Plan()
                if not await self._wait(stripe, holder):
                    stripe.close()
                    return Plan()
                # Free: look for the copy without holding the stripe, so the waiters pin
                # side by side; one that finds none takes the stripe above, and looks
                # again under it before it stores its bytes.
                stripe.let_go()
                if await self._pin(session, digest):
                    stripe.close()
                    return Plan(pinned=True)
        except BaseException:
            stripe.close()
            raise

    async def _wait(self, stripe: ClaimStripe, holder: Claimant) -> bool:
        """Until the stripe is free (and held by this waiter now) or has another holder:
        True. False when ``holder`` stalled (see ``STALL``)."""
        backend = self.root.backend
        pause = _FIRST_PAUSE
        size: int | None = -1
        since = next_look = time.monotonic()
        pace: tuple[float, int] | None = None  # (when, size) it was first seen with bytes
        while not stripe.try_hold():
            now = time.monotonic()
            if now >= next_look:
                next_look = now + _PROGRESS_EVERY
                if stripe.holder() != holder:
                    return True  # its upload ended and another one holds the stripe
                st = backend.stat(holder.session)
                grown = None if st is None else st.st_size
                length = holder.length
                received = grown is not None and length is not None and grown >= length
                if grown != size or received:
                    size, since = grown, now  # growing, or all in and being published
                elif now - since >= STALL:
                    return False
                if grown and length is not None and not received:
                    if pace is None:
                        pace = (now, grown)  # not before: it may wait for its turn (a burst)
                    elif _too_slow(pace, now, grown, length):
                        return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_PAUSE)
        return True


def _too_slow(first: tuple[float, int], now: float, grown: int, length: int) -> bool:
    """Whether a holder, at its pace since ``first`` (when, size), needs more than
    ``AHEAD`` seconds for the rest of its ``length`` bytes; unknown before ``PACE_AFTER``
    (and while it does not grow at all: ``STALL`` decides that)."""
    seen_for = now - first[0]
    rate = (grown - first[1]) / seen_for if seen_for >= PACE_AFTER else 0.0
    return rate > 0 and (length - grown) / rate > AHEAD
