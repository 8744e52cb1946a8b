"""What every workload is: an untimed setup, a timed run, an untimed cleanup, per target.

The runner calls ``setup`` on every target, then ``run`` on each in turn, then
``cleanup``, so the timed runs of one workload sit next to each other in time and see the
same machine. ``run`` loops through :func:`run_pool`, which bounds every loop by a count,
a deadline and an error budget.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dockyard.bench.client import Registry
from dockyard.bench.content import Blob, Content
from dockyard.bench.rawhttp import RawPool
from dockyard.bench.sink import SinkPool
from dockyard.bench.stats import Recorder


class Metric(StrEnum):
    """The figure a workload is judged by, as a key of :class:`RunResult`."""

    MIB_S = "mib_s"
    REQ_S = "req_s"
    WALL_S = "wall_s"

    @property
    def label(self) -> str:
        return {"mib_s": "MiB/s", "req_s": "req/s", "wall_s": "wall s"}[self.value]

    @property
    def higher_is_better(self) -> bool:
        return self is not Metric.WALL_S


@dataclass
class Context:
    """One target as a workload sees it, for one repetition."""

    registry: Registry
    content: Content
    rep: int
    #: time.monotonic() after which no new operation starts.
    deadline: float
    #: Errors after which a run stops early (a down target fails fast, not 20,000 times).
    max_errors: int
    verify: bool
    #: Moves the progress bar by one operation and its bytes.
    advance: Callable[[int], None]
    #: The lean clients, set in timed runs of workloads that ask for them (``timed_with``).
    raw: RawPool | None = None
    sinks: SinkPool | None = None


class Workload(ABC):
    """One named measurement; subclasses say what is set up, timed and cleaned up."""

    name: str
    metric: Metric
    #: Connections the timed run's session may hold.
    connections: int
    #: Seconds after which the timed run starts no new operation.
    time_limit: float
    #: The client of the timed run: "aiohttp", "raw" (``rawhttp``, small GET and HEAD) or
    #: "sink" (``sink``, blob pulls). Setup and cleanup always use aiohttp.
    timed_with: str = "aiohttp"

    def blobs(self, rep: int) -> list[Blob]:
        """Blobs whose digests must be known before this repetition (hashed untimed)."""
        return []

    def params(self) -> dict[str, Any]:
        """What the JSON records about this workload's shape."""
        return {}

    def progress_total(self) -> tuple[int, str]:
        """The progress bar's total and unit ("B" or "op") for one timed run."""
        return 0, "op"

    async def setup(self, ctx: Context) -> None:
        """Untimed; idempotent, since it runs again in every repetition. None by default."""
        return None

    @abstractmethod
    async def run(self, ctx: Context, rec: Recorder) -> None:
        """The timed section."""

    async def cleanup(self, ctx: Context) -> None:
        """Untimed: give back disk the next workload may need. Nothing by default."""
        return None


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


async def run_pool(
    ctx: Context,
    rec: Recorder,
    count: int,
    concurrency: int,
    op: Callable[[int], Awaitable[tuple[int, int]]],
) -> None:
    """``op(0)`` .. ``op(count - 1)`` on ``concurrency`` workers, each timed.

    ``op`` returns (HTTP requests made, payload bytes moved). Workers stop taking new
    indexes at the deadline or once the error budget is spent.
    """
    indexes = iter(range(count))

    async def worker() -> None:
        for i in indexes:
            if time.monotonic() >= ctx.deadline or rec.errors >= ctx.max_errors:
                return
            started = time.perf_counter()
            try:
                requests, nbytes = await op(i)
            except Exception as exc:
                rec.failed(describe(exc))
                continue
            rec.ok(time.perf_counter() - started, requests, nbytes)
            ctx.advance(nbytes)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, count)))))


async def gather_limited(concurrency: int, jobs: Sequence[Callable[[], Awaitable[None]]]) -> None:
    """Run setup jobs ``concurrency`` at a time; the first failure cancels the rest."""
    queue = iter(jobs)

    async def worker() -> None:
        for job in queue:
            await job()

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(max(1, min(concurrency, len(jobs)))):
                group.create_task(worker())
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None
