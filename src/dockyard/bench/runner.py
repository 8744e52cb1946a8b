"""Runs the workloads against the targets: interleaved, order rotated, repeated.

The machine is shared and noisy, so a figure from one target is only compared with the
same workload on another target measured moments apart. For each repetition and each
workload the runner hashes the blobs it needs, sets every target up (untimed), times each
target in turn, in an order rotated by repetition and workload so no target always goes
first, then cleans up. Server CPU and memory are read from ``/proc`` when PIDs are given.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from dockyard.bench.client import Registry, new_session
from dockyard.bench.content import Content
from dockyard.bench.procstats import ServerWatch
from dockyard.bench.rawhttp import RawPool
from dockyard.bench.sink import SinkPool
from dockyard.bench.stats import MiB, Recorder, RunResult
from dockyard.bench.workload import Context, Workload, describe

#: Connections of the session each target's setup and cleanup use.
SETUP_CONNECTIONS = 32
#: Bound on one workload's setup or cleanup on one target.
SETUP_LIMIT = 900.0
#: How often server memory is sampled.
SAMPLE_EVERY = 0.2


@dataclass(frozen=True)
class Target:
    index: int
    url: str
    name: str
    pid: int | None = None


@dataclass
class Options:
    repeat: int = 3
    verify: bool = False
    progress: bool = True
    #: Errors after which one timed run stops early.
    max_errors: int = 20


@dataclass
class ServerReport:
    """One target's server over the whole run."""

    target: int
    pid: int
    #: VmHWM of the main process: its exact lifetime peak RSS.
    vmhwm_mib: float | None
    #: Largest sampled VmRSS of the main process during the run.
    peak_rss_mib: float
    #: Largest sampled sum of PSS over the process and its descendants.
    tree_pss_peak_mib: float
    #: VmHWM of every process of the tree at the end, by PID.
    tree_vmhwm_mib: dict[int, float]
    cpu_s: float | None


@dataclass
class Outcome:
    runs: list[RunResult] = field(default_factory=list)
    servers: list[ServerReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _not_run(workload: Workload, rep: int, target: Target, position: int, why: str) -> RunResult:
    """The result of a timed run that could not start: one error, no figures."""
    rec = Recorder()
    rec.failed(why)
    return RunResult.of(workload.name, rep, target.index, position, 0, rec, None, None, 0)


def rotated(targets: list[Target], by: int) -> list[Target]:
    k = by % len(targets)
    return targets[k:] + targets[:k]


class Runner:
    def __init__(self, targets: list[Target], workloads: list[Workload], options: Options):
        self.targets = targets
        self.workloads = workloads
        self.options = options
        self.content = Content()
        self.watches = {t.index: ServerWatch(t.pid) for t in targets if t.pid is not None}
        self.outcome = Outcome()

    def _bar(self, **kwargs: Any) -> tqdm[Any]:
        return tqdm(file=sys.stderr, disable=not self.options.progress, mininterval=0.5, **kwargs)

    async def _sample_forever(self) -> None:
        while True:
            for watch in self.watches.values():
                watch.sample()
            await asyncio.sleep(SAMPLE_EVERY)

    @contextlib.asynccontextmanager
    async def _setup_registries(self) -> AsyncIterator[dict[int, Registry]]:
        async with contextlib.AsyncExitStack() as stack:
            registries = {}
            for target in self.targets:
                session = await stack.enter_async_context(new_session(SETUP_CONNECTIONS))
                registries[target.index] = Registry(session, target.url, self.content)
            yield registries

    def _context(
        self, registry: Registry, rep: int, limit: float, advance: Callable[[int], None]
    ) -> Context:
        return Context(
            registry=registry,
            content=self.content,
            rep=rep,
            deadline=time.monotonic() + limit,
            max_errors=self.options.max_errors,
            verify=self.options.verify,
            advance=advance,
        )

    async def run(self) -> Outcome:
        cpu_at_start = {i: w.cpu_seconds() for i, w in self.watches.items()}
        sampler = asyncio.create_task(self._sample_forever())
        total = self.options.repeat * len(self.workloads) * len(self.targets)
        try:
            async with self._setup_registries() as setups:
                with self._bar(total=total, unit="run", desc="bench") as bar:
                    for rep in range(self.options.repeat):
                        for number, workload in enumerate(self.workloads):
                            order = rotated(self.targets, rep + number)
                            await self._one(workload, rep, order, setups, bar)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        for index, watch in self.watches.items():
            watch.sample()
            start, end = cpu_at_start[index], watch.cpu_seconds()
            hwm = {pid: round(b / MiB, 1) for pid, b in watch.hwm().items()}
            peak = round(watch.run_peak / MiB, 1)
            if watch.pid in hwm:
                # The kernel syncs its RSS counters lazily, so a sampled VmRSS can briefly
                # read above VmHWM; the high-water mark is at least what was seen.
                hwm[watch.pid] = max(hwm[watch.pid], peak)
            self.outcome.servers.append(
                ServerReport(
                    target=index,
                    pid=watch.pid,
                    vmhwm_mib=hwm.get(watch.pid),
                    peak_rss_mib=peak,
                    tree_pss_peak_mib=round(watch.tree_peak / MiB, 1),
                    tree_vmhwm_mib=hwm,
                    cpu_s=None if start is None or end is None else round(end - start, 2),
                )
            )
        return self.outcome

    async def _one(
        self,
        workload: Workload,
        rep: int,
        order: list[Target],
        setups: dict[int, Registry],
        bar: tqdm[Any],
    ) -> None:
        """One workload, one repetition: hash, set up all, time each, clean up all."""
        await self.content.prepare(workload.blobs(rep))
        failed: dict[int, str] = {}
        for target in order:
            bar.set_description(f"bench r{rep + 1} {workload.name} setup @ {target.name}")
            ctx = self._context(setups[target.index], rep, SETUP_LIMIT, lambda _n: None)
            try:
                async with asyncio.timeout(SETUP_LIMIT):
                    await workload.setup(ctx)
            except Exception as exc:
                failed[target.index] = f"setup: {describe(exc)}"
        for position, target in enumerate(order):
            bar.set_description(f"bench r{rep + 1} {workload.name} @ {target.name}")
            if target.index in failed:
                result = _not_run(workload, rep, target, position, failed[target.index])
            else:
                result = await self._timed(workload, rep, target, position)
            self.outcome.runs.append(result)
            bar.update()
        for target in order:
            if target.index in failed:
                continue
            ctx = self._context(setups[target.index], rep, SETUP_LIMIT, lambda _n: None)
            try:
                async with asyncio.timeout(SETUP_LIMIT):
                    await workload.cleanup(ctx)
            except Exception as exc:
                self.outcome.warnings.append(
                    f"{workload.name} r{rep + 1} cleanup @ {target.name}: {describe(exc)}"
                )

    async def _timed(
        self, workload: Workload, rep: int, target: Target, position: int
    ) -> RunResult:
        total, unit = workload.progress_total()
        inner = self._bar(
            total=total or None,
            unit=unit,
            unit_scale=unit == "B",
            unit_divisor=1024,
            desc=f"{workload.name} @ {target.name}",
            leave=False,
        )

        def advance(nbytes: int) -> None:
            inner.update(nbytes if unit == "B" else 1)

        raw = RawPool(target.url) if workload.timed_with == "raw" else None
        sinks = SinkPool(target.url) if workload.timed_with == "sink" else None
        try:
            async with new_session(workload.connections) as session:
                registry = Registry(session, target.url, self.content)
                ctx = self._context(registry, rep, workload.time_limit, advance)
                ctx.raw, ctx.sinks = raw, sinks
                warm = sinks.warm if sinks else raw.warm if raw else registry.warm
                try:
                    async with asyncio.timeout(30):
                        await warm(workload.connections)
                except Exception as exc:
                    return _not_run(workload, rep, target, position, f"warm-up: {describe(exc)}")
                return await self._measure(workload, ctx, target, position)
        finally:
            for pool in (raw, sinks):
                if pool is not None:
                    pool.close()
            inner.close()

    async def _measure(
        self, workload: Workload, ctx: Context, target: Target, position: int
    ) -> RunResult:
        """The timed section itself, between two readings of server and client CPU."""
        watch = self.watches.get(target.index)
        rec = Recorder()
        cpu_before = None
        if watch is not None:
            watch.window_start()
            cpu_before = watch.cpu_seconds()
        ctx.deadline = time.monotonic() + workload.time_limit
        client_before = time.process_time()
        started = time.perf_counter()
        try:
            async with asyncio.timeout(workload.time_limit * 1.5 + 10):
                await workload.run(ctx, rec)
        except TimeoutError:
            rec.failed("cancelled: still running well past the time limit")
        except Exception as exc:
            rec.failed(describe(exc))
        wall = time.perf_counter() - started
        client_cpu = time.process_time() - client_before
        server_cpu = server_rss = None
        if watch is not None:
            cpu_after = watch.cpu_seconds()
            watch.sample()
            if cpu_before is not None and cpu_after is not None:
                server_cpu = cpu_after - cpu_before
            server_rss = watch.window_peak
        return RunResult.of(
            workload.name,
            ctx.rep,
            target.index,
            position,
            wall,
            rec,
            server_cpu,
            server_rss,
            client_cpu,
        )
