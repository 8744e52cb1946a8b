"""Blob contents: random, unique per run, and generated without holding a blob in memory.

zot's ``zb`` pushes mostly-zero blobs, which flatters any storage that compresses or
deduplicates blocks. Here one random MiB is drawn per run and every 4 KiB page of every
generated MiB is stamped with the blob's key and the MiB's number, so no 4 KiB block
repeats anywhere in a run and nothing compresses at block level. Generating a GiB costs
about 0.06 s of client CPU (16 strided writes and one copy per MiB), so the client stays
cheap next to the servers it measures on the same two cores.

What this does not defeat: a compressor with a window over 1 MiB could find the 4 KiB
runs shared between two MiBs. No registry measured here compresses blobs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

#: The unit of generation: one random buffer of this size is stamped per piece.
PIECE = 1 << 20
#: Stamps go at the start of every page of this size.
PAGE = 4096
_STAMP = 16


@dataclass(frozen=True)
class Blob:
    """A blob of the run: its key (which fixes its bytes) and its size."""

    key: str
    size: int


class Content:
    """The bytes of every blob of one run, and their digests (computed once, then cached)."""

    def __init__(self, seed: bytes | None = None) -> None:
        self._base = bytes(seed if seed is not None else os.urandom(PIECE))
        if len(self._base) != PIECE:
            raise ValueError(f"seed must be {PIECE} bytes")
        self._digests: dict[Blob, str] = {}
        self._lock = asyncio.Lock()
        #: Names this run in configs and manifests, so they too are new to every target.
        self.run_id = hashlib.blake2b(self._base, digest_size=8).hexdigest()

    def pieces(self, blob: Blob, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The bytes ``[start, end)`` of ``blob``, in pieces of at most one MiB."""
        end = blob.size if end is None else end
        tag = hashlib.blake2b(blob.key.encode(), digest_size=8).digest()
        work = bytearray(self._base)
        pages = PIECE // PAGE
        for number in range(start // PIECE, -(-end // PIECE)):
            stamp = tag + number.to_bytes(8, "big")
            for offset in range(_STAMP):
                work[offset::PAGE] = bytes((stamp[offset],)) * pages
            lo = max(start, number * PIECE) - number * PIECE
            hi = min(end, (number + 1) * PIECE) - number * PIECE
            yield bytes(work[lo:hi])

    async def stream(
        self, blob: Blob, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """``pieces`` as the async iterator aiohttp streams a request body from."""
        for piece in self.pieces(blob, start, end):
            yield piece

    def body(self, blob: Blob) -> bytes:
        """The whole blob in memory: only for small blobs (configs, 1 MiB layers)."""
        return b"".join(self.pieces(blob))

    def _hash(self, blob: Blob) -> str:
        hasher = hashlib.sha256()
        for piece in self.pieces(blob):
            hasher.update(piece)
        return "sha256:" + hasher.hexdigest()

    def known_digest(self, blob: Blob) -> str:
        """The digest of a blob already prepared (KeyError if ``prepare`` never saw it)."""
        return self._digests[blob]

    async def prepare(self, blobs: list[Blob]) -> None:
        """Hash every blob not hashed yet, two at a time in threads (hashlib drops the GIL).

        Done before any timed section, so a push never pays for hashing: the digest of a
        monolithic PUT must be known before its body goes anyway.
        """
        async with self._lock:
            todo = [b for b in dict.fromkeys(blobs) if b not in self._digests]
            loop = asyncio.get_running_loop()
            with concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="bench-hash") as pool:
                digests = await asyncio.gather(
                    *(loop.run_in_executor(pool, self._hash, b) for b in todo)
                )
            self._digests.update(zip(todo, digests, strict=True))
