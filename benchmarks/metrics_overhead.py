"""What do metrics and the JSON access log cost per request?

    python benchmarks/metrics_overhead.py --seconds 5 --clients 16 --rounds 3

Serves one small repository (written on disk) under three configs: log level ``warn``
with metrics off (the floor), ``warn`` with metrics on, and ``info`` (one JSON access line
per request, to a file) with metrics on. Runs manifest GETs by tag from concurrent aiohttp
clients, one config after another, for several rounds, and prints for each config the
best round's requests per second and the server's CPU time per request (user + system, from
/proc), with the difference to the floor. CPU per request is the figure to trust on a
shared machine: requests per second move with whatever else runs there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import free_port, wait_ready, write_repo

CONFIGS = {
    "floor (warn, no metrics)": ("warn", False),
    "metrics on (warn)": ("warn", True),
    "metrics on + access log (info)": ("info", True),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rate(url: str, clients: int, seconds: float) -> tuple[float, int]:
    headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    count = 0
    deadline = time.monotonic() + seconds

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal count
        while time.monotonic() < deadline:
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200
            count += 1

    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        await asyncio.gather(*(one(session) for _ in range(clients)))
        return count / (time.monotonic() - started), count


def serve(work: Path, root: Path, level: str, metrics: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config: dict[str, object] = {
        "storage": {"rootDirectory": str(root)},
        "http": {"address": "127.0.0.1", "port": port},
        "log": {"level": level, "output": str(work / f"log-{port}.jsonl")},
    }
    if metrics:
        config["extensions"] = {"metrics": {"enable": True}}
    path = work / f"config-{port}.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", str(path)])
    url = f"http://127.0.0.1:{port}"
    wait_ready(url, proc)
    return proc, url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    best: dict[str, float] = {}
    cpu: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        root = work / "data"
        write_repo(root / "bench", images=1)
        for _ in range(args.rounds):
            for name, (level, metrics) in CONFIGS.items():
                proc, url = serve(work, root, level, metrics)
                try:
                    target = f"{url}/v2/bench/manifests/t0"
                    asyncio.run(rate(target, args.clients, 1.0))  # warm
                    before = cpu_seconds(proc.pid)
                    got, count = asyncio.run(rate(target, args.clients, args.seconds))
                    per_request = (cpu_seconds(proc.pid) - before) / count
                finally:
                    proc.terminate()
                    proc.wait()
                best[name] = max(best.get(name, 0.0), got)
                cpu[name] = min(cpu.get(name, float("inf")), per_request)
    floor = cpu[next(iter(CONFIGS))]
    for name, value in best.items():
        used = cpu[name] * 1e6
        extra = used - floor * 1e6
        print(f"{name:32} {value:7.0f} req/s  {used:6.1f} us CPU/request ({extra:+5.1f})")


if __name__ == "__main__":
    main()
