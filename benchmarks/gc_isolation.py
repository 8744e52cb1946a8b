"""Does GC of one large repository slow down reads of another?

    python benchmarks/gc_isolation.py --untagged 20000 --orphans 20000 --clients 16 --rounds 3

Repository X holds a tagged image (``keep``) and, each round, gets ``--untagged`` untagged
images (manifest, config, layer) older than ``retention.delay``, ``--orphans`` orphan
blobs older than ``gcDelay`` and one more image tagged ``trigger``; repository Y holds one
small image. Each round has two phases, run one after the other:

- idle: ``--clients`` connections send manifest GETs to Y for ``--seconds``;
- GC: the same load, while one GC pass collects X. The pass starts when X's ``trigger``
  tag is deleted (an inline pass; that image is old and untagged then, so it goes too)
  and ends when the server's ``dockyard_gc_runs_total`` counts it, after its database
  updates; it must leave only ``keep``'s three files.

The GETs come from a process of their own, started per phase, so nothing this script
does (polling the metrics listener, writing the next round's files) competes with the
load generator for its event loop. Both processes time with the system-wide monotonic
clock; a GET belongs to the window its response completed in.

Reported per round and pooled over the rounds, GC against idle: Y's throughput and its
ratio, p50/p99/max latency (and, per round, when the slowest GET completed, in seconds
from the window's start: at the DELETE, at the pass's end or in between tells which step
held a worker), the added max latency (GC max minus idle max; the goal is at most
50 ms), the longest time during which no GET of Y completed on any connection,
and the server's CPU (in cores) summed over all its processes (the server, GC's worker
process and anything else it started).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import httpx
from common import free_port, percentile, start_dockyard, write_blob, write_image, write_repo

#: Files of X that GC must keep: the ``keep`` image's manifest, config and layer.
KEPT_FILES = 3
#: Seconds of load before a window opens: the load process's connections are warm.
WARM_UP = 0.5
#: How often the metrics listener is asked whether the GC pass ended (both phases).
POLL = 0.1
TICK = os.sysconf("SC_CLK_TCK")


# -- the load generator process ----------------------------------------------------------


async def hammer(url: str, clients: int, stop: asyncio.Event) -> tuple[array[float], array[float]]:
    """GET ``url`` on ``clients`` connections until ``stop``; start and end of each GET.

    Prints ``ready`` once the first GET completed, so the caller can time its window.
    The times go into flat arrays, not a list of tuples: a million tuples made Python's
    own garbage collector stall this process for tens of milliseconds now and then, more
    often the longer the window, which showed as the server's latency.
    """
    starts: array[float] = array("d")
    ends: array[float] = array("d")
    headers = {"Accept": "application/vnd.oci.image.manifest.v1+json"}

    async def one(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            start = time.monotonic()
            async with session.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            starts.append(start)
            ends.append(time.monotonic())
            if len(ends) == 1:
                print("ready", flush=True)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        gc.freeze()  # what exists now is never scanned again
        await asyncio.gather(*(one(session) for _ in range(clients)))
    return starts, ends


async def load_main(url: str, clients: int) -> None:
    """GETs until a line (or EOF) on stdin, then every (start, end) as JSON on stdout."""
    stop = asyncio.Event()
    task = asyncio.create_task(hammer(url, clients, stop))
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    stop.set()
    starts, ends = await task
    json.dump([starts.tolist(), ends.tolist()], sys.stdout)


class Load:
    """A load generator process: started (and warm) on construction, stopped by ``stop``."""

    def __init__(self, url: str, clients: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--load", url, "--clients", str(clients)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == b"ready\n", "the load generator failed"
        time.sleep(WARM_UP)

    def stop(self) -> list[tuple[float, float]]:
        out, _ = self.proc.communicate(b"stop\n")
        assert self.proc.returncode == 0, "the load generator failed"
        starts, ends = json.loads(out)
        return list(zip(starts, ends, strict=True))


# -- what is measured --------------------------------------------------------------------


@dataclass
class Window:
    """The GETs of Y that completed between ``started`` and ``ended``."""

    started: float
    ended: float
    latencies: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    #: When the slowest GET completed, in seconds into the window: at the DELETE (0 s),
    #: at the pass's end, or in between tells which step held a worker.
    slowest_at: float = 0.0
    cpu: float = 0.0  # server CPU seconds, all its processes
    #: Set on a pooled window: the longest gap of the windows pooled.
    gap: float | None = None

    @classmethod
    def of(cls, gets: list[tuple[float, float]], started: float, ended: float) -> Window:
        inside = sorted((e, e - s) for s, e in gets if started <= e <= ended)
        window = cls(started, ended, [lat for _, lat in inside], [e for e, _ in inside])
        if inside:
            window.slowest_at = max(inside, key=lambda got: got[1])[0] - started
        return window

    @classmethod
    def pooled(cls, windows: list[Window]) -> Window:
        pool = cls(0.0, sum(w.seconds for w in windows))
        for w in windows:
            pool.latencies += w.latencies
            pool.cpu += w.cpu
        pool.gap = max(w.longest_gap for w in windows)
        return pool

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    @property
    def longest_gap(self) -> float:
        """The longest time with no GET completing, the window's ends included."""
        if self.gap is not None:
            return self.gap
        times = [self.started, *self.done_at, self.ended]
        return max(b - a for a, b in itertools.pairwise(times))

    def line(self, name: str) -> str:
        p50, p99 = (percentile(self.latencies, p) * 1e3 for p in (50, 99))
        return (
            f"{name}: {len(self.latencies)} GETs in {self.seconds:.1f}s = {self.rate:.0f} req/s"
            f"  p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {max(self.latencies) * 1e3:.1f} ms"
            + ("" if self.gap is not None else f" (at {self.slowest_at:.2f}s)")
            + f"  longest gap {self.longest_gap * 1e3:.1f} ms"
            f"  server CPU {self.cpu / self.seconds:.2f} cores"
        )


def compare(idle: Window, busy: Window) -> str:
    added_max = (max(busy.latencies) - max(idle.latencies)) * 1e3
    added_p99 = (percentile(busy.latencies, 99) - percentile(idle.latencies, 99)) * 1e3
    return (
        f"throughput ratio GC/idle = {busy.rate / idle.rate:.2f}; added p99 {added_p99:+.1f} ms;"
        f" added max {added_max:+.1f} ms (goal: at most +50 ms); longest gap "
        f"{busy.longest_gap * 1e3:.1f} ms against {idle.longest_gap * 1e3:.1f} ms"
    )


def server_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process under it, reaped children included.

    A child's time moves into its parent's ``cutime`` when it is reaped, so the sum stays
    whole across a worker's exit.
    """
    parent: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        parent[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = sum(int(x) for x in fields[11:15])  # utime..cstime

    def under(p: int) -> bool:
        while p > 1:
            if p == pid:
                return True
            p = parent.get(p, 0)
        return False

    return sum(t for p, t in ticks.items() if under(p)) / TICK


class Metrics:
    """The server's metrics listener, asked how many GC passes ended."""

    def __init__(self, url: str) -> None:
        self.url = url

    def gc_runs(self) -> float:
        text = httpx.get(self.url).text
        found = re.search(r"^dockyard_gc_runs_total (\S+)$", text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0


# -- the repositories --------------------------------------------------------------------


def fill(x_dir: Path, untagged: int, orphans: int) -> None:
    """Add the round's garbage to X, and a new ``trigger`` image; publish the index."""
    index_file = x_dir / "index.json"
    index = json.loads(index_file.read_bytes())
    index["manifests"] += [write_image(x_dir, i, None) for i in range(untagged)]
    index["manifests"].append(write_image(x_dir, untagged, "trigger"))
    for _ in range(orphans):
        write_blob(x_dir, os.urandom(32))
    tmp = x_dir / ".index.json.bench"
    tmp.write_text(json.dumps(index))
    tmp.rename(index_file)  # the server must never read half an index
    os.sync()  # the writes' flush is not GC's work: done before anything is measured


def count_files(folder: Path) -> int:
    with os.scandir(folder) as listing:
        return sum(1 for _ in listing)


# -- the rounds --------------------------------------------------------------------------


def idle_phase(target: str, clients: int, seconds: float, metrics: Metrics, pid: int) -> Window:
    load = Load(target, clients)
    started, cpu = time.monotonic(), server_cpu(pid)
    while time.monotonic() - started < seconds:
        time.sleep(POLL)
        metrics.gc_runs()  # the same polling as the GC phase: both pay for it
    ended, cpu = time.monotonic(), server_cpu(pid) - cpu
    window = Window.of(load.stop(), started, ended)
    window.cpu = cpu
    return window


def gc_phase(
    base: str, target: str, args: argparse.Namespace, metrics: Metrics, pid: int
) -> tuple[Window, float]:
    """The load while one GC pass collects X; the window and whether the pass ended."""
    runs = metrics.gc_runs()
    load = Load(target, args.clients)
    started, cpu = time.monotonic(), server_cpu(pid)
    assert httpx.delete(f"{base}/v2/x/manifests/trigger").status_code == 202
    while metrics.gc_runs() == runs and time.monotonic() - started < args.max_seconds:
        time.sleep(POLL)
    ended, cpu = time.monotonic(), server_cpu(pid) - cpu
    window = Window.of(load.stop(), started, ended)
    window.cpu = cpu
    return window, metrics.gc_runs() > runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--untagged", type=int, default=20000)
    parser.add_argument("--orphans", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5, help="of each idle phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--max-seconds", type=float, default=900, help="stop measuring if GC runs longer"
    )
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)  # the GET process
    args = parser.parse_args()
    if args.load:
        asyncio.run(load_main(args.load, args.clients))
        return
    delay = 1.0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        x_dir = root / "x"
        write_repo(x_dir, 0, tags=("keep",))
        write_repo(root / "y", 1)
        metrics_port = free_port()
        config = {
            "storage": {
                "rootDirectory": str(root),
                "gcDelay": f"{delay:g}s",
                "gcInterval": "24h",
                "retention": {"delay": f"{delay:g}s"},
                "dedupe": False,
            },
            "extensions": {"metrics": {"enable": True, "port": metrics_port}},
        }
        proc, base = start_dockyard(config, Path(tmp))
        metrics = Metrics(f"http://127.0.0.1:{metrics_port}/metrics")
        target = f"{base}/v2/y/manifests/t0"
        idles: list[Window] = []
        busies: list[Window] = []
        print(
            f"X: {args.untagged} untagged images + {args.orphans} orphans a round "
            f"({3 * args.untagged + args.orphans + 3} files to remove); "
            f"{args.clients} connections GET Y's manifest; {args.rounds} rounds"
        )
        try:
            for n in range(1, args.rounds + 1):
                fill(x_dir, args.untagged, args.orphans)
                time.sleep(delay + 0.5)  # everything written is now older than both delays
                # X's index parsed before measuring: the DELETE then costs what a delete
                # costs, and what follows is GC's own work.
                assert httpx.get(f"{base}/v2/x/tags/list").status_code == 200
                idle = idle_phase(target, args.clients, args.seconds, metrics, proc.pid)
                busy, finished = gc_phase(base, target, args, metrics, proc.pid)
                left = count_files(x_dir / "blobs" / "sha256")
                state = "finished" if finished else "still running"
                print(f"round {n}: GC pass {state} in {busy.seconds:.1f}s, {left} files left")
                print("  " + idle.line("idle"))
                print("  " + busy.line("GC  "))
                print("  " + compare(idle, busy))
                idles.append(idle)
                busies.append(busy)
                if not finished or left != KEPT_FILES:
                    break
        finally:
            proc.terminate()
            proc.wait()
        if idles:
            idle, busy = Window.pooled(idles), Window.pooled(busies)
            print(f"all {len(idles)} rounds:")
            print("  " + idle.line("idle"))
            print("  " + busy.line("GC  "))
            print("  " + compare(idle, busy))


if __name__ == "__main__":
    main()
