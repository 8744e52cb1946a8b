"""Does GC of one large repository slow down reads of another?

    python benchmarks/gc_isolation.py --untagged 20000 --orphans 20000 --clients 16

Builds repository X with ``--untagged`` untagged images (manifest, config, layer) older
than ``retention.delay``, ``--orphans`` orphan blobs older than ``gcDelay``, and two
tagged images (``keep``, ``trigger``), and a small repository Y. Then it sends manifest
GETs to Y over ``--clients`` connections, first with GC idle, then while one GC pass
collects X: every untagged manifest and everything only they reach, and every orphan.
The pass starts when X's ``trigger`` tag is deleted (an inline pass; its image is old
and untagged then, so it goes too) and ends when only ``keep``'s three files are left.

Reported, GC busy against idle: Y's throughput and its ratio, p50/p99/max latency, the
added max latency (busy max minus idle max), and the longest stall: the longest time
during which no GET of Y completed on any connection.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from common import percentile, start_dockyard, write_blob, write_repo

#: Files of X that GC must keep: the ``keep`` image's manifest, config and layer.
KEPT_FILES = 3


@dataclass
class Window:
    """The GETs of one measurement window: latency and completion time of each."""

    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / (self.ended - self.started)

    @property
    def longest_stall(self) -> float:
        """The longest gap with no completion (from the window's start to its end)."""
        times = [self.started, *sorted(self.done_at), self.ended]
        return max(b - a for a, b in itertools.pairwise(times))

    def line(self, name: str) -> str:
        ms = [percentile(self.latencies, p) * 1e3 for p in (50, 99)]
        return (
            f"{name}: {len(self.latencies)} GETs in {self.ended - self.started:.1f}s = "
            f"{self.rate:.0f} req/s  p50 {ms[0]:.2f} ms  p99 {ms[1]:.2f} ms  "
            f"max {max(self.latencies) * 1e3:.1f} ms  longest stall "
            f"{self.longest_stall * 1e3:.1f} ms"
        )


async def hammer(url: str, clients: int, until: asyncio.Event) -> Window:
    window = Window(started=time.perf_counter())
    headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    async def one(session: aiohttp.ClientSession) -> None:
        while not until.is_set():
            start = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            end = time.perf_counter()
            window.latencies.append(end - start)
            window.done_at.append(end)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(one(session) for _ in range(clients)))
    window.ended = time.perf_counter()
    return window


async def count_files(folder: Path) -> int:
    """Count in another process: an 80k-entry listing here would stall this client's loop
    and show up as server latency."""
    proc = await asyncio.create_subprocess_exec(
        "find", str(folder), "-type", "f", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return out.count(b"\n")


async def measure(url: str, clients: int, seconds: float) -> Window:
    stop = asyncio.Event()
    task = asyncio.create_task(hammer(url, clients, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def run(args: argparse.Namespace, base: str, x_dir: Path) -> None:
    target = f"{base}/v2/y/manifests/t0"
    # X's index parsed once before measuring: the DELETE below then costs what a
    # delete costs, and what follows is GC's own work.
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{base}/v2/x/tags/list") as resp,
    ):
        assert resp.status == 200, resp.status
    idle = await measure(target, args.clients, args.seconds)
    blobs = x_dir / "blobs" / "sha256"
    stop = asyncio.Event()
    load = asyncio.create_task(hammer(target, args.clients, stop))
    await asyncio.sleep(0.5)
    index = x_dir / "index.json"
    listed = index.stat().st_size
    total = await count_files(blobs)
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{base}/v2/x/manifests/trigger") as resp,
    ):
        assert resp.status == 202, resp.status
    rewritten: float | None = None
    while (left := await count_files(blobs)) > KEPT_FILES:
        await asyncio.sleep(0.5)
        if rewritten is None and index.stat().st_size < listed / 2:
            rewritten = time.monotonic() - started
        if time.monotonic() - started > args.max_seconds:
            break  # GC runs on spare CPU only: on a saturated machine it may not finish
    gc_seconds = time.monotonic() - started
    stop.set()
    busy = await load
    state = "finished" if left <= KEPT_FILES else f"still running ({left} files left)"
    print(
        f"X: {args.untagged} untagged images + {args.orphans} orphans; GC removed "
        f"{total - left} of {total - KEPT_FILES} files in {gc_seconds:.1f}s, {state}; "
        f"index.json rewritten without the expired manifests after "
        f"{'-' if rewritten is None else f'{rewritten:.1f}s'}; "
        f"{args.clients} connections GET Y's manifest"
    )
    print(idle.line("GC idle"))
    print(busy.line("GC busy"))
    print(f"throughput ratio busy/idle = {busy.rate / idle.rate:.2f}")
    added = (max(busy.latencies) - max(idle.latencies)) * 1e3
    print(f"added max latency = {added:.1f} ms (goal: at most 50 ms)")
    print(
        f"longest stall busy {busy.longest_stall * 1e3:.1f} ms "
        f"against idle {idle.longest_stall * 1e3:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--untagged", type=int, default=20000)
    parser.add_argument("--orphans", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="stop measuring if GC runs longer"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        write_repo(root / "x", args.untagged, tag_prefix=None, tags=("keep", "trigger"))
        for _ in range(args.orphans):
            write_blob(root / "x", os.urandom(32))
        write_repo(root / "y", 1)
        time.sleep(1.5)  # everything written is now older than both delays
        config = {
            "storage": {
                "rootDirectory": str(root),
                "gcDelay": "1s",
                "gcInterval": "24h",
                "retention": {"delay": "1s"},
                "dedupe": False,
            }
        }
        proc, base = start_dockyard(config, Path(tmp))
        try:
            asyncio.run(run(args, base, root / "x"))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
