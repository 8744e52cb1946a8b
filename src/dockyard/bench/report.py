"""Medians per workload and target, ratios to the first target, as tables and as JSON.

Only ratios mean anything on a shared machine, so the ratio is the headline. A run with
any error is left out of the medians (its figures describe a failure, not a speed) and
the error count is shown beside them instead.
"""

from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from typing import Any

import aiohttp

from dockyard.bench.runner import Outcome, Target
from dockyard.bench.stats import RunResult, median
from dockyard.bench.workload import Metric, Workload
from dockyard.util.plural import count

#: Client CPU (share of one core) above which the client, not the server, may set the pace.
CLIENT_BOUND = 0.85


@dataclass
class TargetSummary:
    target: int
    reps: int
    errors: int
    median: float | None
    ratio: float | None
    #: Median over repetitions of this target's figure over the first target's in the same
    #: repetition: runs seconds apart see the same machine, so pairing cancels slow drift.
    paired_ratio: float | None
    #: Server CPU per operation as a ratio to the first target's (below 1: cheaper).
    cpu_ratio: float | None
    p50_ms: float | None
    p99_ms: float | None
    server_cpu_s: float | None
    server_cpu_ms_per_op: float | None
    client_cpu_share: float | None


@dataclass
class WorkloadSummary:
    workload: str
    metric: str
    higher_is_better: bool
    targets: list[TargetSummary]


def _median_of(runs: list[RunResult], key: str) -> float | None:
    values = [getattr(r, key) for r in runs if getattr(r, key) is not None]
    return round(median(values), 3) if values else None


def summarize(
    runs: list[RunResult], workloads: list[Workload], targets: int
) -> list[WorkloadSummary]:
    summaries = []
    for workload in workloads:
        rows: list[TargetSummary] = []
        for index in range(targets):
            mine = [r for r in runs if r.workload == workload.name and r.target == index]
            good = [r for r in mine if r.errors == 0 and r.ops > 0]
            share = [r.client_cpu_s / r.wall_s for r in good if r.wall_s > 0]
            rows.append(
                TargetSummary(
                    target=index,
                    reps=len(good),
                    errors=sum(r.errors for r in mine),
                    median=_median_of(good, workload.metric.value),
                    ratio=None,
                    paired_ratio=None,
                    cpu_ratio=None,
                    p50_ms=_median_of(good, "p50_ms"),
                    p99_ms=_median_of(good, "p99_ms"),
                    server_cpu_s=_median_of(good, "server_cpu_s"),
                    server_cpu_ms_per_op=_median_of(good, "server_cpu_ms_per_op"),
                    client_cpu_share=round(median(share), 3) if share else None,
                )
            )
        base, base_cpu = rows[0].median, rows[0].server_cpu_ms_per_op
        by_rep = {
            (r.target, r.rep): getattr(r, workload.metric.value)
            for r in runs
            if r.workload == workload.name and r.errors == 0 and r.ops > 0
        }
        for row in rows:
            pairs = [
                value / by_rep[(0, rep)]
                for (target, rep), value in by_rep.items()
                if target == row.target and by_rep.get((0, rep))
            ]
            row.paired_ratio = round(median(pairs), 3) if pairs else None
            if base and row.median is not None:
                row.ratio = round(row.median / base, 3)
            if base_cpu and row.server_cpu_ms_per_op is not None:
                row.cpu_ratio = round(row.server_cpu_ms_per_op / base_cpu, 3)
        summaries.append(
            WorkloadSummary(
                workload.name, workload.metric.value, workload.metric.higher_is_better, rows
            )
        )
    return summaries


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render(
    summaries: list[WorkloadSummary], targets: list[Target], outcome: Outcome, repeat: int
) -> str:
    """The human report: ratios, then latency and CPU per target, then server memory."""
    first = targets[0].name
    header = ["workload", "metric", *(t.name for t in targets)]
    header += [f"{t.name}/{first}" for t in targets[1:]]
    header += [f"paired {t.name}/{first}" for t in targets[1:]]
    header += [f"CPU/op {t.name}/{first} ↓" for t in targets[1:] if outcome.servers]
    rows = []
    for s in summaries:
        metric = Metric(s.metric)
        arrow = "↑" if s.higher_is_better else "↓"
        cells = [s.workload, f"{metric.label} {arrow}"]
        for t in s.targets:
            cell = _fmt(t.median, 2 if metric is Metric.WALL_S else 1)
            cells.append(cell + (f" ({count(t.errors, 'error')})" if t.errors else ""))
        cells += ["-" if t.ratio is None else f"{t.ratio:.2f}x" for t in s.targets[1:]]
        cells += [
            "-" if t.paired_ratio is None else f"{t.paired_ratio:.2f}x" for t in s.targets[1:]
        ]
        if outcome.servers:
            cells += ["-" if t.cpu_ratio is None else f"{t.cpu_ratio:.2f}x" for t in s.targets[1:]]
        rows.append(cells)
    parts = [
        f"Medians of {repeat} repetition(s). Ratio = target / {first} (the first URL): "
        "above 1 is better for ↑ metrics, below 1 is better for ↓. Paired: the median of the "
        "per-repetition ratios (runs seconds apart). CPU/op: the server's CPU seconds per "
        "operation, as the same ratio of medians (below 1: cheaper), given PIDs.",
        _table(header, rows),
        "",
        "Latency (median of per-run p50 and p99, ms per operation), server CPU per run and per "
        "operation (10 ms resolution), and client CPU as a share of one core "
        "(* = the client may be what sets the pace):",
    ]
    detail_header = [
        "workload",
        "target",
        "p50 ms",
        "p99 ms",
        "server CPU s",
        "CPU ms/op",
        "client CPU",
    ]
    detail = []
    for s in summaries:
        for t in s.targets:
            share = t.client_cpu_share
            mark = "*" if share is not None and share > CLIENT_BOUND else ""
            detail.append(
                [
                    s.workload,
                    targets[t.target].name,
                    _fmt(t.p50_ms, 2),
                    _fmt(t.p99_ms, 2),
                    _fmt(t.server_cpu_s, 2),
                    _fmt(t.server_cpu_ms_per_op, 3),
                    "-" if share is None else f"{share:.0%}{mark}",
                ]
            )
    parts.append(_table(detail_header, detail))
    if outcome.servers:
        parts += ["", "Servers over the whole run:"]
        server_rows = [
            [
                targets[server.target].name,
                str(server.pid),
                _fmt(server.vmhwm_mib),
                _fmt(server.peak_rss_mib),
                _fmt(server.tree_pss_peak_mib),
                str(len(server.tree_vmhwm_mib)),
                _fmt(server.cpu_s, 1),
            ]
            for server in outcome.servers
        ]
        header = [
            "server",
            "pid",
            "VmHWM MiB",
            "peak RSS MiB (sampled)",
            "tree peak PSS MiB",
            "processes",
            "CPU s",
        ]
        parts.append(_table(header, server_rows))
    for warning in outcome.warnings:
        parts.append(f"warning: {warning}")
    return "\n".join(parts)


def to_json(
    summaries: list[WorkloadSummary],
    targets: list[Target],
    workloads: list[Workload],
    outcome: Outcome,
    meta: dict[str, Any],
) -> dict[str, Any]:
    """Everything: the raw run results, the medians and ratios, the servers, the setting."""
    return {
        **meta,
        "machine": {
            "python": platform.python_version(),
            "aiohttp": aiohttp.__version__,
            "platform": platform.platform(),
        },
        "targets": [dataclasses.asdict(t) for t in targets],
        "workloads": [
            {"name": w.name, "metric": w.metric.value, "params": w.params()} for w in workloads
        ],
        "summary": [dataclasses.asdict(s) for s in summaries],
        "servers": [dataclasses.asdict(s) for s in outcome.servers],
        "runs": [dataclasses.asdict(r) for r in outcome.runs],
        "warnings": outcome.warnings,
        "errors": sum(r.errors for r in outcome.runs),
    }
