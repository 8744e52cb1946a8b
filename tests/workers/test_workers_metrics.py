"""Metrics with workers: a scrape on any worker sums every worker's counters, and shows
the figures of the jobs the lease holder runs (the usage walk), whichever worker the
change went through."""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import Server, free_port
from ops_helpers import ops_config, wait_for
from prometheus_client.parser import text_string_to_metric_families
from spec_helpers import MANIFEST_ACCEPT, image_manifest, push_image
from workers_helpers import connection_to, send, start_workers, worker_pids

MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _lease_holder(root: Path) -> int | None:
    """The pid holding the background lease (from /proc/locks)."""
    ino = str((root / "_dockyard" / "leader").stat().st_ino)
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].split(":")[-1] == ino:
            return int(parts[4])
    return None


def _samples(server: Server, pid: int) -> Samples:
    """A scrape answered by worker ``pid``."""
    conn = connection_to(server, pid)
    try:
        answer = send(conn, "GET", "/metrics")
    finally:
        conn.close()
    assert answer.status == 200, answer.content
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.content.decode())
        for s in family.samples
    }


def test_a_scrape_on_any_worker_sums_every_worker(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = ops_config(tmp_path / "config.json", root, extensions={"metrics": {"enable": True}})
    server = start_workers(root, 2, config=config)
    repo = "metrics/app"
    gets = (
        "dockyard_http_requests_total",
        frozenset({"method": "GET", "route": MANIFEST_ROUTE, "status": "200"}.items()),
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            push_image(c, repo, "v1")
        first, second = worker_pids(server)
        before = _samples(server, first).get(gets, 0.0)
        for pid, times in ((first, 3), (second, 5)):
            conn = connection_to(server, pid)
            for _ in range(times):
                path = f"/v2/{repo}/manifests/v1"
                assert send(conn, "GET", path, None, {"Accept": MANIFEST_ACCEPT}).status == 200
            conn.close()
        for pid in (first, second):
            wait_for(
                lambda pid=pid: _samples(server, pid).get(gets, 0.0) - before == 8,
                10,
                "every worker's scrape to count the 8 GETs both served",
            )

        # The usage walk runs in the lease holder; a push through another worker reaches
        # its figures, and every worker serves them.
        leader = wait_for(lambda: _lease_holder(root), 10, "a worker to hold the lease")
        other = next(pid for pid in worker_pids(server) if pid != leader)
        second_repo = "metrics/other"
        with httpx.Client(base_url=server.url, timeout=30) as c:
            pushed = image_manifest(c, second_repo)
        conn = connection_to(server, other)
        headers = {"Content-Type": pushed.media_type}
        put = send(conn, "PUT", f"/v2/{second_repo}/manifests/v1", pushed.body, headers)
        conn.close()
        assert put.status == 201
        files = (root / second_repo / "blobs").rglob("*")
        on_disk = sum(f.stat().st_size for f in files if f.is_file())
        stored = (
            "dockyard_storage_bytes",
            frozenset({"root": str(root), "repo": second_repo}.items()),
        )
        for pid in (first, second):
            wait_for(
                lambda pid=pid: _samples(server, pid).get(stored) == on_disk,
                20,
                "the repository's storage bytes on every worker",
            )
    finally:
        server.stop()


def test_metrics_on_their_own_port_with_workers(tmp_path: Path) -> None:
    root = tmp_path / "data"
    port = free_port()
    metrics = {"enable": True, "address": "127.0.0.1", "port": port}
    config = ops_config(tmp_path / "config.json", root, extensions={"metrics": metrics})
    server = start_workers(root, 2, config=config)  # both workers serve the scrape port
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            push_image(c, "metrics/own-port", "v1")
        for _ in range(6):
            with httpx.Client(timeout=30) as c:
                scraped = c.get(f"http://127.0.0.1:{port}/metrics")
            assert scraped.status_code == 200
            assert 'route="/v2/{name}/manifests/{reference}"' in scraped.text
    finally:
        server.stop()
