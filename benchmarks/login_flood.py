"""Does a flood of wrong passwords slow down authenticated pushes?

    python benchmarks/login_flood.py --seconds 10

Serves an htpasswd of cost 10 and measures the latency of authenticated blob pushes
(POST, then a monolithic PUT of 4 KiB, one push after the other over one kept-alive
connection from 127.0.0.1): first idle, then while another process keeps ``--flood``
concurrent wrong-password requests in flight. The flood comes from 127.0.0.2 (another
client, so the per-address failed-login limit applies as it would in life), then from
127.0.0.1 (the pusher's own address), then from 127.0.0.2 with ``failLimit: 0``, where
only the password threads of their own stand between the flood and the pushes. The phases are
interleaved over ``--rounds`` rounds, so a change in the machine's load hits all alike.
Prints median and p99 per phase, their ratio to idle (and the range of that ratio's
median over the rounds), and the statuses the flood got back.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import aiohttp
import bcrypt
from common import free_port, percentile

USER, PASSWORD = "pusher", "push-secret"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def start(workdir: Path, fail_limit: int | None) -> tuple[subprocess.Popen[bytes], str]:
    """A server with a cost-10 htpasswd (``fail_limit`` None: the default limit)."""
    htpasswd = workdir / "htpasswd"
    if not htpasswd.exists():
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode()
        htpasswd.write_text(f"{USER}:{hashed}\n")
    port = free_port()
    auth: dict[str, object] = {"htpasswd": {"path": str(htpasswd)}}
    if fail_limit is not None:
        auth["failLimit"] = fail_limit
    config = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(workdir / f"data-{port}")},
        "http": {"address": "127.0.0.1", "port": port, "auth": auth},
        "log": {"level": "warn"},
    }
    path = workdir / f"config-{port}.json"
    path.write_text(json.dumps(config))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "serve", str(path)])
    url = f"http://127.0.0.1:{port}"
    asyncio.run(_wait_ready(url, proc))
    return proc, url


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited")
            try:
                async with session.get(f"{url}/v2/") as resp:
                    if resp.status == 401:
                        return
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    raise RuntimeError("server not ready")


async def push_once(session: aiohttp.ClientSession, url: str, auth: str) -> float:
    """One authenticated blob push; its latency in seconds."""
    data = os.urandom(4096)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = time.perf_counter()
    headers = {"Authorization": auth}
    async with session.post(f"{url}/v2/bench/app/blobs/uploads/", headers=headers) as resp:
        assert resp.status == 202, (resp.status, await resp.text())
        location = resp.headers["Location"]
    target = location if location.startswith("http") else url + location
    put_headers = {**headers, "Content-Type": "application/octet-stream"}
    async with session.put(
        target, params={"digest": digest}, data=data, headers=put_headers
    ) as resp:
        assert resp.status == 201, (resp.status, await resp.text())
    return time.perf_counter() - started


async def pushes(url: str, seconds: float, warmup: int = 0) -> list[float]:
    """Push one blob after the other for ``seconds``; the latencies, after ``warmup``
    pushes that are not counted."""
    auth = basic(USER, PASSWORD)
    connector = aiohttp.TCPConnector(limit=1, local_addr=("127.0.0.1", 0))
    samples: list[float] = []
    async with aiohttp.ClientSession(connector=connector) as session:
        for _ in range(warmup):
            await push_once(session, url, auth)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            samples.append(await push_once(session, url, auth))
    return samples


async def flood(url: str, address: str, concurrency: int, stop: asyncio.Event) -> Counter[int]:
    """``concurrency`` wrong-password requests always in flight, each a new guess,
    until ``stop`` is set."""
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=concurrency, local_addr=(address, 0))

    async def one(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            auth = basic(USER, "guess-" + os.urandom(6).hex())
            try:
                async with session.get(f"{url}/v2/", headers={"Authorization": auth}) as resp:
                    await resp.read()
                    statuses[resp.status] += 1
            except aiohttp.ClientError:
                statuses[0] += 1

    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one(session) for _ in range(concurrency)))
    return statuses


async def flood_until_stdin_closes(url: str, address: str, concurrency: int) -> Counter[int]:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    threading.Thread(
        target=lambda: (sys.stdin.read(), loop.call_soon_threadsafe(stop.set)), daemon=True
    ).start()
    return await flood(url, address, concurrency, stop)


def flood_process(url: str, address: str, concurrency: int) -> subprocess.Popen[str]:
    """The flood in a process of its own, so its client work is not the pusher's; it
    stops when its stdin is closed."""
    args = [sys.executable, __file__, "--flood-only", url, address, "--flood", str(concurrency)]
    return subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def phase(url: str, seconds: float, flood_from: str | None, concurrency: int) -> Phase:
    """Push for ``seconds``, with a flood from ``flood_from`` (None: idle)."""
    # Logged in before the flood starts: the pushes' password check is cached.
    asyncio.run(pushes(url, 0, warmup=3))
    proc = None
    if flood_from is not None:
        proc = flood_process(url, flood_from, concurrency)
        time.sleep(2)  # the flood is in full swing before the first push
    samples = asyncio.run(pushes(url, seconds))
    got: Counter[str] = Counter()
    if proc is not None:
        out, _ = proc.communicate("", timeout=600)  # the flood lasts as long as the pushes
        got.update(json.loads(out))
    return Phase(samples, got)


class Phase:
    """Push latencies of one phase (over all rounds) and what its flood got back."""

    def __init__(self, samples: list[float] | None = None, got: Counter[str] | None = None):
        self.samples = samples or []
        self.got = got or Counter()
        self.round_medians: list[float] = [percentile(self.samples, 50)] if self.samples else []

    def add(self, other: Phase) -> None:
        self.samples += other.samples
        self.got.update(other.got)
        self.round_medians += other.round_medians

    @property
    def median_ms(self) -> float:
        return percentile(self.samples, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return percentile(self.samples, 99) * 1000


#: (name, failLimit of the server: None for the default, where the flood comes from)
PHASES: list[tuple[str, int | None, str | None]] = [
    ("idle", None, None),
    ("flood from 127.0.0.2", None, "127.0.0.2"),
    ("flood from 127.0.0.1 (the pusher's address)", None, "127.0.0.1"),
    ("failLimit 0: idle", 0, None),
    ("failLimit 0: flood from 127.0.0.2", 0, "127.0.0.2"),
]


def report(results: dict[str, Phase], flood: int, rounds: int, seconds: float) -> None:
    print(
        f"authenticated 4 KiB blob pushes, cost-10 htpasswd, {flood} wrong-password requests"
        f" in flight; {rounds} rounds of {seconds:g} s per phase"
    )
    head = f"{'phase':<44} {'pushes':>6} {'median':>7} {'p99 ms':>7}"
    print(f"{head} {'med/idle':>8} {'p99/idle':>8} {'round med/idle':>15}  flood got")
    for name, limit, _ in PHASES:
        result = results[name]
        idle = results["idle" if limit is None else "failLimit 0: idle"]
        per_round = [m / i for m, i in zip(result.round_medians, idle.round_medians, strict=True)]
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}x"
        got = dict(sorted(result.got.items())) or "-"
        print(
            f"{name:<44} {len(result.samples):>6} {result.median_ms:>7.2f} {result.p99_ms:>7.2f}"
            f" {result.median_ms / idle.median_ms:>7.2f}x {result.p99_ms / idle.p99_ms:>7.2f}x"
            f" {spread:>15}  {got}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase and round")
    parser.add_argument("--rounds", type=int, default=3, help="phases interleaved, this often")
    parser.add_argument("--flood", type=int, default=64, help="wrong-password requests in flight")
    parser.add_argument("--flood-only", nargs=2, metavar=("URL", "ADDRESS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_only:
        url, address = args.flood_only
        statuses = asyncio.run(flood_until_stdin_closes(url, address, args.flood))
        print(json.dumps({str(k): v for k, v in sorted(statuses.items())}))
        return
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        workdir = Path(tmp)
        servers = {limit: start(workdir, limit) for limit in (None, 0)}
        results = {name: Phase() for name, _, _ in PHASES}
        try:
            # Interleaved, so a change in the machine's load hits every phase alike.
            for _ in range(args.rounds):
                for name, limit, source in PHASES:
                    url = servers[limit][1]
                    results[name].add(phase(url, args.seconds, source, args.flood))
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(10)
    report(results, args.flood, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
