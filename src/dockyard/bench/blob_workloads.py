"""Blob workloads: push (monolithic or chunked) and pull, at a size and a concurrency.

Every push sends blobs the target has not seen in this workload and repetition, so each
one takes the server's full path (stream, write, hash, publish); cleanup deletes them.
Blobs of 1 GiB and over are the exception: they are the same in every workload and
repetition, because distribution keeps deleted blob data until an offline GC and 8 GiB
per repetition would fill the disk. A re-sent 1 GiB blob is still streamed and written
whole by both servers; only the final rename is skipped, which is nothing next to 1 GiB.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from dockyard.bench.content import Blob
from dockyard.bench.stats import Recorder
from dockyard.bench.workload import Context, Metric, Workload, gather_limited, run_pool

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30
#: At and above this size, blobs are shared between workloads and repetitions (see above).
SHARED_SIZE = GiB
#: Bytes of distinct blobs a pull workload cycles through (page cache holds them all).
PULL_SET = 256 * MiB
PUSH_REPO = "bench/push"
PULL_REPO = "bench/pull"


def size_label(size: int) -> str:
    for unit, suffix in ((GiB, "g"), (MiB, "m"), (KiB, "k")):
        if size >= unit and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def chunk_for(size: int) -> int:
    """PATCH size for a chunked push: about ten chunks, 256 KiB to 16 MiB each."""
    return max(256 * KiB, min(16 * MiB, size // 10 // (64 * KiB) * (64 * KiB)))


def _shared(size: int, index: int) -> Blob:
    return Blob(f"shared/{size}/{index}", size)


class PushBlobs(Workload):
    """``count`` blobs of ``size`` pushed ``concurrency`` at a time."""

    metric = Metric.MIB_S

    def __init__(
        self, size: int, count: int, concurrency: int, chunked: bool, time_limit: float
    ) -> None:
        kind = "chunked" if chunked else "mono"
        self.name = f"push-{kind}-{size_label(size)}-c{concurrency}"
        self.size, self.count, self.concurrency, self.chunked = size, count, concurrency, chunked
        self.connections = concurrency
        self.time_limit = time_limit
        self.chunk = chunk_for(size)

    def blobs(self, rep: int) -> list[Blob]:
        if self.size >= SHARED_SIZE:
            return [_shared(self.size, i) for i in range(self.count)]
        return [Blob(f"{self.name}/r{rep}/{i}", self.size) for i in range(self.count)]

    def params(self) -> dict[str, Any]:
        chunk = {"chunk_bytes": self.chunk} if self.chunked else {}
        return {"size": self.size, "count": self.count, "concurrency": self.concurrency, **chunk}

    def progress_total(self) -> tuple[int, str]:
        return self.size * self.count, "B"

    async def run(self, ctx: Context, rec: Recorder) -> None:
        blobs = self.blobs(ctx.rep)
        registry = ctx.registry

        async def push(i: int) -> tuple[int, int]:
            if self.chunked:
                requests = await registry.push_chunked(PUSH_REPO, blobs[i], self.chunk)
            else:
                requests = await registry.push_monolithic(PUSH_REPO, blobs[i])
            return requests, blobs[i].size

        await run_pool(ctx, rec, self.count, self.concurrency, push)

    async def cleanup(self, ctx: Context) -> None:
        registry, content = ctx.registry, ctx.content
        digests = [content.known_digest(b) for b in self.blobs(ctx.rep)]
        await gather_limited(8, [partial(registry.delete_blob, PUSH_REPO, d) for d in digests])


class PullBlobs(Workload):
    """``count`` GETs of blobs of ``size``, ``concurrency`` at a time, cycling a small set."""

    metric = Metric.MIB_S
    timed_with = "sink"

    def __init__(self, size: int, count: int, concurrency: int, time_limit: float) -> None:
        self.name = f"pull-{size_label(size)}-c{concurrency}"
        self.size, self.count, self.concurrency = size, count, concurrency
        self.connections = concurrency
        self.time_limit = time_limit
        self.distinct = min(count, max(1, PULL_SET // size))

    def blobs(self, rep: int) -> list[Blob]:
        if self.size >= SHARED_SIZE:
            return [_shared(self.size, i) for i in range(self.distinct)]
        return [Blob(f"pull/{self.size}/{i}", self.size) for i in range(self.distinct)]

    def params(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "count": self.count,
            "concurrency": self.concurrency,
            "distinct_blobs": self.distinct,
        }

    def progress_total(self) -> tuple[int, str]:
        return self.size * self.count, "B"

    async def setup(self, ctx: Context) -> None:
        registry, content = ctx.registry, ctx.content

        async def ensure(blob: Blob) -> None:
            if not await registry.blob_exists(PULL_REPO, content.known_digest(blob)):
                await registry.push_monolithic(PULL_REPO, blob)

        await gather_limited(4, [partial(ensure, b) for b in self.blobs(ctx.rep)])

    async def run(self, ctx: Context, rec: Recorder) -> None:
        blobs = self.blobs(ctx.rep)
        sinks, content = ctx.sinks, ctx.content
        if sinks is None:
            raise RuntimeError("pulls are timed with the sink client")

        async def pull(i: int) -> tuple[int, int]:
            blob = blobs[i % len(blobs)]
            digest = content.known_digest(blob)
            path = f"/v2/{PULL_REPO}/blobs/{digest}"
            return 1, await sinks.pull(path, blob.size, digest if ctx.verify else None)

        await run_pool(ctx, rec, self.count, self.concurrency, pull)
