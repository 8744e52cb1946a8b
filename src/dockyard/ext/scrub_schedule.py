"""``extensions.scrub``: the scrub pass of ``dockyard scrub``, run by the server on a timer.

The first pass runs one ``interval`` after start (a restart never re-hashes the store at
once), then every ``interval``. Hashing happens in GC's ``SCHED_IDLE`` worker process, so
the pass takes only spare CPU. Corrupt files are quarantined; every problem is logged as
an error; the last pass is exposed to metrics. ``enable`` and ``interval`` change on a
config reload.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from dockyard.ext.metrics import counter, gauge
from dockyard.storage.scrubber import CORRUPT, MISSING, SIZE, UNREADABLE, Scrubber, ScrubReport
from dockyard.storage.store import Store
from dockyard.util.plural import count

log = logging.getLogger("dockyard.scrub")


class ScrubRunner:
    """The background scrub: its schedule, its last report."""

    def __init__(self, store: Store, enabled: bool, interval: float) -> None:
        self.store = store
        self.enabled = enabled
        self.interval = interval
        self.last: ScrubReport | None = None
        self.runs = 0
        self._changed = asyncio.Event()

    def configure(self, enabled: bool, interval: float) -> None:
        """New settings (config reload); the wait for the next pass starts over."""
        if (enabled, interval) != (self.enabled, self.interval):
            self.enabled, self.interval = enabled, interval
            self._changed.set()

    async def run_forever(self) -> None:
        while True:
            self._changed.clear()
            timeout = self.interval if self.enabled else None
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
                continue
            except TimeoutError:
                pass
            try:
                await self.run_once()
            except Exception:
                log.exception("background scrub failed")

    async def run_once(self) -> ScrubReport:
        report = await Scrubber(self.store).run()
        self.last, self.runs = report, self.runs + 1
        for problem in report.problems:
            log.error(
                "scrub: %s",
                problem,
                extra={
                    "fields": {"repo": problem.repo, "digest": problem.digest, "kind": problem.kind}
                },
            )
        log.info(
            "scrub checked %s, %s (%s) in %.1fs: %s",
            count(report.repos, "repository", "repositories"),
            count(report.blobs, "blob"),
            count(report.bytes, "byte"),
            report.seconds,
            count(len(report.problems), "problem"),
        )
        return report

    def metrics(self) -> Iterator[Metric]:
        """Scrape-time families: runs so far, and what the last pass found."""
        yield counter("dockyard_scrub_runs", "Background scrub passes completed", self.runs)
        last = self.last
        if last is None:
            return
        yield gauge(
            "dockyard_scrub_last_run_timestamp_seconds",
            "When the last scrub pass finished (Unix time)",
            last.finished_at,
        )
        yield gauge(
            "dockyard_scrub_last_duration_seconds", "How long the last pass took", last.seconds
        )
        yield gauge("dockyard_scrub_last_checked_blobs", "Blob files hashed", last.blobs)
        yield gauge("dockyard_scrub_last_checked_bytes", "Bytes hashed", last.bytes)
        problems = GaugeMetricFamily(
            "dockyard_scrub_last_problems",
            "Problems the last pass found, by kind (0 when all is well)",
            labels=["kind"],
        )
        for kind in (CORRUPT, MISSING, SIZE, UNREADABLE):
            problems.add_metric([kind], last.count(kind))
        yield problems
