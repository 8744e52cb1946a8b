"""Does GC of one large repository slow down reads of another?

    python benchmarks/gc_isolation.py --images 20000 --orphans 20000

Builds repository X with many images and orphan blobs and a small repository Y, then
measures p50/p99 of ``GET /v2/Y/manifests/t0`` from concurrent clients, first with GC
idle, then while a GC pass walks X (started by deleting one of X's tags, with
gcDelay 0s so every orphan is removed). Prints both and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from common import percentile, start_dockyard, write_blob, write_repo


async def hammer(url: str, clients: int, until: asyncio.Event) -> list[float]:
    samples: list[float] = []
    headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    async def one(session: aiohttp.ClientSession) -> None:
        while not until.is_set():
            start = time.perf_counter()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200
            samples.append(time.perf_counter() - start)

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(one(session) for _ in range(clients)))
    return samples


async def count_files(folder: Path) -> int:
    """Count in another process: a 60k-entry listing here would stall this client's loop
    and show up as server latency."""
    proc = await asyncio.create_subprocess_exec(
        "find", str(folder), "-type", "f", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return out.count(b"\n")


async def measure(url: str, clients: int, seconds: float) -> list[float]:
    stop = asyncio.Event()
    task = asyncio.create_task(hammer(url, clients, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await task


async def run(args: argparse.Namespace, base: str, x_dir: Path) -> None:
    target = f"{base}/v2/y/manifests/t0"
    idle = await measure(target, args.clients, args.seconds)
    blobs = x_dir / "blobs" / "sha256"
    before = await count_files(blobs)
    stop = asyncio.Event()
    load = asyncio.create_task(hammer(target, args.clients, stop))
    await asyncio.sleep(0.2)
    async with (
        aiohttp.ClientSession() as session,
        session.delete(f"{base}/v2/x/manifests/t0") as resp,
    ):
        assert resp.status == 202, resp.status
    started = time.monotonic()
    # Deleting the tag leaves its manifest listed (untagged): GC removes the orphans.
    while await count_files(blobs) > before - args.orphans:
        await asyncio.sleep(0.5)
        if time.monotonic() - started > 600:
            raise RuntimeError("gc did not finish")
    gc_seconds = time.monotonic() - started
    stop.set()
    busy = await load
    p50i, p99i = percentile(idle, 50) * 1e3, percentile(idle, 99) * 1e3
    p50b, p99b = percentile(busy, 50) * 1e3, percentile(busy, 99) * 1e3
    print(f"X: {args.images} images + {args.orphans} orphans; GC pass took {gc_seconds:.1f}s")
    print(f"GC idle : {len(idle)} GETs  p50 {p50i:.2f} ms  p99 {p99i:.2f} ms")
    print(f"GC busy : {len(busy)} GETs  p50 {p50b:.2f} ms  p99 {p99b:.2f} ms")
    print(f"p99 ratio busy/idle = {p99b / p99i:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--orphans", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        write_repo(root / "x", args.images)
        for _ in range(args.orphans):
            write_blob(root / "x", os.urandom(32))
        write_repo(root / "y", 1)
        config = {"storage": {"rootDirectory": str(root), "gcDelay": "0s", "dedupe": False}}
        proc, base = start_dockyard(config, Path(tmp))
        try:
            asyncio.run(run(args, base, root / "x"))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
