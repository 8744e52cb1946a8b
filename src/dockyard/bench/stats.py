"""What one timed run counts, and the few statistics the report takes of it.

Latencies are kept whole (a float per operation, at most a few tens of thousands per run)
so percentiles are exact, not estimated from buckets.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

MiB = 1 << 20
#: Error messages kept per run: enough to see what went wrong, not a log.
KEPT_ERRORS = 5


def percentile(samples: list[float], pct: float) -> float:
    """The nearest-rank percentile of ``samples`` (0.0 when there are none)."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


@dataclass
class Recorder:
    """Counts of one timed run: operations, HTTP requests, bytes, latencies, errors."""

    ops: int = 0
    requests: int = 0
    bytes: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)
    #: Workload-specific tallies (for example layer uploads skipped after a HEAD).
    counters: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def ok(self, seconds: float, requests: int = 1, nbytes: int = 0) -> None:
        self.ops += 1
        self.requests += requests
        self.bytes += nbytes
        self.latencies.append(seconds)

    def failed(self, message: str) -> None:
        """An operation that failed: counted apart, so no rate includes a fast error."""
        self.errors += 1
        if len(self.error_samples) < KEPT_ERRORS:
            self.error_samples.append(message)


@dataclass
class RunResult:
    """One workload, one repetition, one target: everything measured, as the JSON holds it."""

    workload: str
    rep: int
    target: int
    position: int
    wall_s: float
    ops: int
    requests: int
    bytes: int
    errors: int
    mib_s: float
    req_s: float
    ops_s: float
    p50_ms: float
    p99_ms: float
    server_cpu_s: float | None
    #: Server CPU per operation: efficiency even where the client sets the pace.
    server_cpu_ms_per_op: float | None
    server_rss_peak_mib: float | None
    client_cpu_s: float
    error_samples: list[str]
    counters: dict[str, int]

    @classmethod
    def of(
        cls,
        workload: str,
        rep: int,
        target: int,
        position: int,
        wall: float,
        rec: Recorder,
        server_cpu: float | None,
        server_rss: int | None,
        client_cpu: float,
    ) -> RunResult:
        wall = max(wall, 1e-9)
        return cls(
            workload=workload,
            rep=rep,
            target=target,
            position=position,
            wall_s=round(wall, 6),
            ops=rec.ops,
            requests=rec.requests,
            bytes=rec.bytes,
            errors=rec.errors,
            mib_s=round(rec.bytes / MiB / wall, 3),
            req_s=round(rec.requests / wall, 3),
            ops_s=round(rec.ops / wall, 3),
            p50_ms=round(percentile(rec.latencies, 50) * 1000, 3),
            p99_ms=round(percentile(rec.latencies, 99) * 1000, 3),
            server_cpu_s=None if server_cpu is None else round(server_cpu, 3),
            server_cpu_ms_per_op=(
                None if server_cpu is None or not rec.ops else round(server_cpu / rec.ops * 1e3, 4)
            ),
            server_rss_peak_mib=None if server_rss is None else round(server_rss / MiB, 1),
            client_cpu_s=round(client_cpu, 3),
            error_samples=rec.error_samples,
            counters=rec.counters,
        )
