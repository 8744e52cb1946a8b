"""CPU seconds and memory of a server's process tree, read from ``/proc``.

A server may do work in child processes (dockyard's GC walker is one), so CPU is the
process's own time, the time of children it has reaped, and the time of live
descendants. Peak memory is tracked two ways: ``VmHWM`` of each process (a true peak, but
it cannot be reset, so it covers the process's whole life) and the summed ``VmRSS`` of the
tree sampled a few times a second (which can be taken per workload).
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
#: Samples between two re-scans of /proc for the tree's members.
_RESCAN_EVERY = 10


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of ``/proc/PID/stat`` after the command name (state is index 0)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def _status_kib(pid: int, key: str) -> int | None:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith(key):
            return int(line.split()[1])
    return None


def descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (this kernel has no ``/proc/PID/task/*/children``)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _pss_kib(pid: int) -> int | None:
    """Proportional set size: shared pages split between the processes sharing them."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return _status_kib(pid, "VmRSS:")
    for line in lines:
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


class ServerWatch:
    """One server's process tree: CPU seconds on demand, memory sampled by the runner.

    Memory is the main process's RSS (what VmHWM bounds) and, for the whole tree, the sum
    of PSS: helper processes (dockyard's forkserver and GC walker) share pages with each
    other, and summing their RSS would count those pages several times.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._tree: list[int] = [pid]
        self._samples = 0
        #: Largest main-process VmRSS seen over the whole run, and since ``window_start``.
        self.run_peak = 0
        self.window_peak = 0
        #: Largest summed PSS of the tree seen over the whole run.
        self.tree_peak = 0

    def alive(self) -> bool:
        return _stat_fields(self.pid) is not None

    def cpu_seconds(self) -> float | None:
        """utime+stime of the process, of reaped children, and of live descendants."""
        fields = _stat_fields(self.pid)
        if fields is None:
            return None
        ticks = sum(int(f) for f in fields[11:15])
        for child in descendants(self.pid):
            child_fields = _stat_fields(child)
            if child_fields is not None:
                ticks += int(child_fields[11]) + int(child_fields[12])
        return ticks / _TICK

    def sample(self) -> None:
        """One memory sample: the main process's RSS, and the tree's PSS."""
        if self._samples % _RESCAN_EVERY == 0:
            self._tree = [self.pid, *descendants(self.pid)]
        self._samples += 1
        rss = (_status_kib(self.pid, "VmRSS:") or 0) * 1024
        self.run_peak = max(self.run_peak, rss)
        self.window_peak = max(self.window_peak, rss)
        tree = sum(_pss_kib(pid) or 0 for pid in self._tree) * 1024
        self.tree_peak = max(self.tree_peak, tree)

    def window_start(self) -> None:
        self.window_peak = 0
        self.sample()

    def hwm(self) -> dict[int, int]:
        """VmHWM in bytes of each live process of the tree: lifetime peaks."""
        peaks = {}
        for pid in [self.pid, *descendants(self.pid)]:
            kib = _status_kib(pid, "VmHWM:")
            if kib is not None:
                peaks[pid] = kib * 1024
        return peaks
