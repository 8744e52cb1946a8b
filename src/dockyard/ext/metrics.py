"""``extensions.metrics``: Prometheus metrics of requests, storage, GC, locks and scrub.

Installed only when the config switches it on. Three sources feed one registry:

- each request, after its response was sent (the access-logger hook, so a blob's
  sendfile is inside its duration): count, latency, bytes in and out, labelled by
  method, status and the route *template* (``/v2/{name}/blobs/{digest}``), never the raw
  path, which would make one time series per repository and digest;
- storage, through the :class:`StorageEvents` hooks (GC passes, lock waits, quarantines),
  so storage never imports prometheus;
- values read at scrape time from caches that are already in memory (storage bytes per
  repository, dedupe savings, upload sessions, the last scrub, config reloads).

With worker processes (``http.workers``), prometheus_client's multiprocess mode keeps the
counters, histograms and the in-flight gauge in files of a folder the supervisor creates
(``PROMETHEUS_MULTIPROC_DIR``), so a scrape on any worker sums every worker's requests,
bytes, GC passes and lock waits. The figures of the jobs only the lease holder runs (the
usage walk, the scrub) are that worker's: it writes them to the same folder every
``SNAPSHOT_EVERY`` seconds, and the other workers serve that copy. Config reloads and
mirroring counts are the answering worker's own (each worker reloads on every SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from dockyard.config.extensions import Metrics as MetricsConfig
from dockyard.ext.usage import UsageTracker
from dockyard.storage.coordination import BackgroundLease
from dockyard.storage.events import StorageEvents
from dockyard.web.app_keys import AFTER_RESPONSE, STORE
from dockyard.web.routing import Access, Route, add_routes
from dockyard.web.transfer import bytes_received, bytes_sent

log = logging.getLogger("dockyard.metrics")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30)
_GC_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800)
_REGEX_PART = re.compile(r"\{(\w+):[^}]*\}")
#: Upload requests, the ones "in flight" counts: they stream a body to disk.
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
#: Methods whose success may change what a repository holds on disk.
_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: More metric families read at scrape time (the scrub extension, config reloads).
ScrapeSource = Callable[[], Iterator[Metric]]
#: The folder of prometheus_client's multiprocess mode (set by the worker supervisor).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The lease holder's scrape-time families, in that folder, for the other workers.
LEADER_SNAPSHOT = "leader.prom"
#: Seconds between two writes of that snapshot (when it changed).
SNAPSHOT_EVERY = 2.0


def route_label(request: web.BaseRequest) -> str:
    """The template of the route that matched, without its regexes; "unmatched" for none."""
    match_info = getattr(request, "match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None:
        return "unmatched"
    return _template(resource.canonical)


@functools.lru_cache(maxsize=256)
def _template(canonical: str) -> str:
    """A regex substitution per request was 3% of a manifest GET; routes are few."""
    return _REGEX_PART.sub(r"{\1}", canonical)


class Metrics(StorageEvents):
    """The metric objects of one server, and the storage hooks that feed them."""

    def __init__(self, usage: UsageTracker, lease: BackgroundLease | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.usage = usage
        self.lease = lease
        #: Set with worker processes: where every worker's values are (see the docstring).
        self.multiproc_dir = os.environ.get(MULTIPROC_ENV) or None
        r = self.registry
        self.requests = Counter(
            "dockyard_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "dockyard_http_request_duration_seconds",
            "Time from a request's arrival until its response was sent",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.received = Counter(
            "dockyard_http_received_bytes",
            "Request body bytes received",
            ["method", "route"],
            registry=r,
        )
        self.sent = Counter(
            "dockyard_http_sent_bytes", "Response body bytes sent", ["method", "route"], registry=r
        )
        self.uploads_in_flight = Gauge(
            "dockyard_uploads_in_flight",
            "Upload requests (POST, PATCH, PUT of blobs) streaming a body right now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.gc_runs = Counter("dockyard_gc_runs", "GC passes over one repository", registry=r)
        self.gc_removed = Counter(
            "dockyard_gc_removed", "What GC removed, by kind", ["kind"], registry=r
        )
        self.gc_freed = Counter("dockyard_gc_freed_bytes", "Disk bytes GC freed", registry=r)
        self.gc_duration = Histogram(
            "dockyard_gc_duration_seconds",
            "Duration of one GC pass over one repository",
            buckets=_GC_BUCKETS,
            registry=r,
        )
        self.lock_wait = Histogram(
            "dockyard_lock_wait_seconds",
            "Time spent waiting for a repository lock before publishing or deleting",
            buckets=_WAIT_BUCKETS,
            registry=r,
        )
        self.quarantined_blobs = Counter(
            "dockyard_quarantined",
            "Blobs and manifests moved to quarantine because their bytes no longer match "
            "their digest",
            registry=r,
        )
        #: More scrape-time families: the config reloader and mirroring add theirs.
        self.sources: list[ScrapeSource] = []
        #: Families of jobs only the lease holder runs (the scrub).
        self.leader_sources: list[ScrapeSource] = []
        self._leader_registry = CollectorRegistry(auto_describe=False)
        self._leader_registry.register(_LeaderFamilies(self))
        self._snapshot = b""
        #: (method, route, status) -> the labelled children a request updates. Bounded by
        #: the routes and statuses there are, not by requests.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram, Counter, Counter]] = {}
        r.register(_ScrapeTime(self))
        #: With workers: every worker's counters and histograms, and this one's sources.
        self.scrape_registry: CollectorRegistry | None = None
        if self.multiproc_dir is not None:
            self.scrape_registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(self.scrape_registry, path=self.multiproc_dir)  # type: ignore[no-untyped-call]
            self.scrape_registry.register(_WorkerFamilies(self))

    # -- scrapes ----------------------------------------------------------------------------

    def _leads(self) -> bool:
        return self.lease is None or self.lease.held

    async def exposition(self) -> bytes:
        """The scrape's body: this process's figures, or, with workers, every worker's."""
        if self.scrape_registry is None:
            return generate_latest(self.registry)
        body = generate_latest(self.scrape_registry)
        if self._leads():
            return body + generate_latest(self._leader_registry)
        return body + await asyncio.to_thread(self._read_snapshot)

    def _snapshot_path(self) -> Path:
        assert self.multiproc_dir is not None
        return Path(self.multiproc_dir) / LEADER_SNAPSHOT

    def _read_snapshot(self) -> bytes:
        with contextlib.suppress(OSError):
            return self._snapshot_path().read_bytes()
        return b""

    def _write_snapshot(self) -> None:
        text = generate_latest(self._leader_registry)
        if text == self._snapshot:
            return
        path = self._snapshot_path()
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(text)
        os.replace(tmp, path)
        self._snapshot = text

    async def publish_forever(self) -> None:
        """In the lease holder, with workers: keep the other workers' copy current."""
        while self.multiproc_dir is not None:
            try:
                await asyncio.to_thread(self._write_snapshot)
            except OSError as exc:
                log.warning("cannot write the metrics snapshot for the other workers: %s", exc)
            await asyncio.sleep(SNAPSHOT_EVERY)

    # -- requests -------------------------------------------------------------------------

    def observe_request(
        self, request: web.BaseRequest, response: web.StreamResponse, seconds: float
    ) -> None:
        route = route_label(request)
        method = request.method
        key = (method, route, response.status)
        children = self._children.get(key)
        if children is None:  # labels() takes a lock and builds a key: do it once per series
            children = self._children[key] = (
                self.requests.labels(method, route, str(response.status)),
                self.latency.labels(method, route),
                self.received.labels(method, route),
                self.sent.labels(method, route),
            )
        requests, latency, received_bytes, sent_bytes = children
        requests.inc()
        latency.observe(seconds)
        received = bytes_received(request)
        if received:
            received_bytes.inc(received)
        sent = bytes_sent(request, response)
        if sent:
            sent_bytes.inc(sent)
        if response.status < 300 and (
            method in _CHANGING or (method == "HEAD" and route.endswith("/blobs/{digest}"))
        ):
            match_info = getattr(request, "match_info", None)
            name = match_info.get("name") if match_info is not None else None
            if isinstance(name, str):
                self.usage.mark(name)

    # -- storage events -------------------------------------------------------------------

    def lock_waited(self, seconds: float) -> None:
        self.lock_wait.observe(seconds)

    def gc_finished(
        self, root: Path, repo: str, seconds: float, blobs: int, manifests: int, freed: int
    ) -> None:
        self.gc_runs.inc()
        self.gc_duration.observe(seconds)
        self.gc_removed.labels("blob").inc(blobs)
        self.gc_removed.labels("manifest").inc(manifests)
        self.gc_freed.inc(freed)
        if blobs or manifests:
            self.usage.mark(repo)

    def quarantined(self, root: Path, repo: str, digest: str, reason: str) -> None:
        self.quarantined_blobs.inc()
        self.usage.mark(repo)


METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)


class _ScrapeTime(Collector):
    """Gauges computed when scraped, from caches already in memory (never a disk walk)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from _usage_families(self.metrics.usage)
        for source in self.metrics.sources + self.metrics.leader_sources:
            yield from source()


class _WorkerFamilies(_ScrapeTime):
    """With workers: the answering worker's own scrape-time families."""

    def collect(self) -> Iterator[Metric]:
        for source in self.metrics.sources:
            yield from source()


class _LeaderFamilies(_ScrapeTime):
    """With workers: the families of the lease holder's jobs (usage walk, scrub)."""

    def collect(self) -> Iterator[Metric]:
        yield from _usage_families(self.metrics.usage)
        for source in self.metrics.leader_sources:
            yield from source()


def _usage_families(usage: UsageTracker) -> Iterator[Metric]:
    """Storage bytes per repository, open upload sessions, dedupe savings."""
    per_repo = GaugeMetricFamily(
        "dockyard_storage_bytes",
        "Bytes of blob files (layers, configs, manifests) each repository holds",
        labels=["root", "repo"],
    )
    sessions = GaugeMetricFamily(
        "dockyard_upload_sessions",
        "Upload sessions open on disk (started, neither finished nor cancelled)",
        labels=["root"],
    )
    per_root: dict[str, int] = {}
    for root, repo, repo_usage in usage.repos():
        per_repo.add_metric([str(root), repo], repo_usage.apparent)
        per_root[str(root)] = per_root.get(str(root), 0) + repo_usage.uploads
    for root_name, count in per_root.items():
        sessions.add_metric([root_name], count)
    saved = GaugeMetricFamily(
        "dockyard_dedupe_saved_bytes",
        "Bytes not stored twice because identical blobs share one inode",
        labels=["root"],
    )
    for root, count in usage.saved():
        saved.add_metric([str(root)], count)
    yield from (per_repo, sessions, saved)


def _own_listener(
    metrics: Metrics, path: str, address: str, port: int
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Serve only the scrape path on ``address:port``, plain HTTP and no login: the
    network decides who reaches it (a monitoring VLAN, a loopback-only sidecar)."""

    async def listen(app: web.Application) -> AsyncIterator[None]:
        scrape_app = web.Application()
        scrape_app[METRICS] = metrics
        scrape_app.router.add_get(path, _scrape)
        runner = web.AppRunner(scrape_app, access_log=None, handle_signals=False)
        await runner.setup()
        # With workers, each binds the port (SO_REUSEPORT): any of them answers for all.
        reuse = metrics.multiproc_dir is not None
        await web.TCPSite(runner, address, port, reuse_port=reuse or None).start()
        log.info("metrics served on http://%s:%d%s", address, port, path)
        yield
        await runner.cleanup()

    return listen


def counter(name: str, doc: str, value: float, **labels: str) -> CounterMetricFamily:
    """A counter family of one sample, for scrape-time sources."""
    family = CounterMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


@web.middleware
async def uploads_in_flight(request: web.Request, handler: Any) -> web.StreamResponse:
    """Counts upload requests while their bodies stream (the only part that needs to wrap
    the handler; everything else is recorded after the response). The running process
    puts it in its middleware chain (``dockyard.app.middleware``) when metrics are on."""
    if request.method not in _UPLOAD_METHODS or "/blobs/uploads" not in request.path:
        response: web.StreamResponse = await handler(request)
        return response
    gauge_ = request.app[METRICS].uploads_in_flight
    gauge_.inc()
    try:
        response = await handler(request)
        return response
    finally:
        gauge_.dec()


async def _scrape(request: web.Request) -> web.Response:
    body = await request.app[METRICS].exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def install(app: web.Application, config: MetricsConfig) -> Metrics:
    """Switch metrics on for ``app``: the scrape route (on ``app``, or on a listener of
    its own when ``config.port`` is set), the hooks, the usage cache."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    store = app[STORE]
    usage = UsageTracker(store)
    metrics = Metrics(usage, store.lease)
    app[METRICS] = metrics
    store.observe(metrics)
    app[AFTER_RESPONSE].append(metrics.observe_request)
    path = config.prometheus.path
    if config.port is None:
        # It names every repository: only who may read them all scrapes it here.
        add_routes(app, (Route("GET", path, _scrape, Access.METRICS),))
    else:
        app.cleanup_ctx.append(_own_listener(metrics, path, config.address, config.port))

    async def keep_usage(app: web.Application) -> AsyncIterator[None]:
        # The walk is the lease holder's, as the other background jobs: once, not per worker.
        tasks = [
            asyncio.create_task(store.lease.run(usage.run), name="storage-usage"),
            asyncio.create_task(store.lease.run(metrics.publish_forever), name="metrics-copy"),
        ]
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    app.cleanup_ctx.append(keep_usage)
    return metrics
