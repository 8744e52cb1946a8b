"""``extensions.metrics``: Prometheus text whose values move as requests are made.

Requests by method, route template and status with latency histograms; bytes received and
sent; uploads in flight and upload sessions; storage bytes per repository; bytes saved by
dedupe; GC runs, removals and durations; lock waits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import Server, start_server
from ops_helpers import ops_config, scrape, total, value, wait_for
from spec_helpers import get_manifest, push_image, sha256_digest, start_upload
from storage_helpers import client_of, push_layers_image

MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
UPLOAD_ROUTE = "/v2/{name}/blobs/uploads/{session}"


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "data"
    config = ops_config(
        tmp_path / "config.json",
        root,
        storage={"gcDelay": "0s"},
        extensions={"metrics": {"enable": True}},
    )
    server = start_server(root, config=config)
    yield server
    server.stop()


def test_request_counts_latency_and_bytes_move(metered: Server) -> None:
    repo = f"metrics/{uuid.uuid4().hex[:8]}"
    with client_of(metered) as c:
        before = scrape(c)
        pushed = push_image(c, repo, "v1")
        for _ in range(5):
            assert get_manifest(c, repo, "v1").status_code == 200
        assert get_manifest(c, repo, "nope").status_code == 404
        after = scrape(c)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    get_ok = {"method": "GET", "route": MANIFEST_ROUTE}
    assert delta("dockyard_http_requests_total", **get_ok, status="200") == 5
    assert delta("dockyard_http_requests_total", **get_ok, status="404") == 1
    assert delta("dockyard_http_request_duration_seconds_count", **get_ok) == 6
    assert delta("dockyard_http_request_duration_seconds_sum", **get_ok) > 0
    assert delta("dockyard_http_sent_bytes_total", **get_ok) >= 5 * len(pushed.body)
    put_manifest = {"method": "PUT", "route": MANIFEST_ROUTE}
    assert delta("dockyard_http_received_bytes_total", **put_manifest) == len(pushed.body)
    assert delta("dockyard_http_requests_total", **put_manifest, status="201") == 1
    blob_puts = delta(
        "dockyard_http_requests_total", method="PUT", route=UPLOAD_ROUTE, status="201"
    )
    assert blob_puts == len(pushed.blobs)
    # A manifest put publishes under the repository's lock: its wait was measured.
    assert delta("dockyard_lock_wait_seconds_count") >= 1
    # Labels carry route templates, never a repository name or digest.
    for (_, labels), _ in after.items():
        for _, label in labels:
            assert repo not in label and "sha256:" not in label, labels


def test_storage_bytes_per_repo_and_dedupe_savings(metered: Server) -> None:
    base = os.urandom(64 * 1024)
    a, b = f"usage/a{uuid.uuid4().hex[:6]}", f"usage/b{uuid.uuid4().hex[:6]}"
    with client_of(metered) as c:
        push_layers_image(c, a, [base], "v1")
        push_layers_image(c, b, [base], "v1")

        def grown() -> dict[str, float] | None:
            samples = scrape(c)
            sizes = {r: total(samples, "dockyard_storage_bytes", repo=r) for r in (a, b)}
            saved = total(samples, "dockyard_dedupe_saved_bytes")
            if min(sizes.values()) >= len(base) and saved >= len(base):
                return {**sizes, "saved": saved}
            return None

        found = wait_for(grown, 10, "storage bytes and dedupe savings to include the base layer")
    assert found["saved"] >= len(base)


def test_gc_runs_and_removals_are_counted(metered: Server) -> None:
    repo = f"gc/{uuid.uuid4().hex[:8]}"
    with client_of(metered) as c:
        before = scrape(c)
        pushed = push_image(c, repo, "v1", layers=2)
        assert c.delete(f"/v2/{repo}/manifests/{pushed.digest}").status_code == 202

        def collected() -> bool:
            after = scrape(c)
            runs = value(after, "dockyard_gc_runs_total") - value(before, "dockyard_gc_runs_total")
            removed = value(after, "dockyard_gc_removed_total", kind="blob")
            return (
                runs >= 1 and removed - value(before, "dockyard_gc_removed_total", kind="blob") >= 3
            )

        wait_for(collected, 10, "an inline GC pass removing the image's three blobs")
        after = scrape(c)
    assert value(after, "dockyard_gc_duration_seconds_count") >= 1
    assert value(after, "dockyard_gc_freed_bytes_total") > 0


def test_uploads_in_flight_and_open_sessions(metered: Server) -> None:
    repo = f"inflight/{uuid.uuid4().hex[:8]}"
    release = threading.Event()
    chunk = os.urandom(32 * 1024)
    result: dict[str, int] = {}
    with client_of(metered) as c:
        url = start_upload(c, repo)

        def body() -> Iterator[bytes]:
            yield chunk
            release.wait(20)
            yield chunk

        def patch() -> None:
            with httpx.Client(timeout=30) as other:
                result["status"] = other.patch(url, content=body()).status_code

        thread = threading.Thread(target=patch)
        thread.start()
        try:
            wait_for(
                lambda: value(scrape(c), "dockyard_uploads_in_flight") == 1,
                10,
                "the streaming PATCH to count as in flight",
            )
            wait_for(
                lambda: total(scrape(c), "dockyard_upload_sessions") >= 1,
                10,
                "the open session to be counted",
            )
        finally:
            release.set()
            thread.join(30)
        assert result.get("status") == 202
        assert value(scrape(c), "dockyard_uploads_in_flight") == 0
        digest = sha256_digest(chunk + chunk)
        done = c.put(url, params={"digest": digest})
        assert done.status_code == 201, done.text


def test_metrics_off_by_default_and_path_configurable(tmp_path: Path, client: httpx.Client) -> None:
    assert client.get("/metrics").status_code == 404  # the shared server has no config
    root = tmp_path / "on"
    config = ops_config(
        tmp_path / "config.json",
        root,
        extensions={"metrics": {"prometheus": {"path": "/internal/prom"}}},
    )
    on = start_server(root, config=config)
    try:
        with client_of(on) as c:
            assert c.get("/v2/").status_code == 200
            samples = scrape(c, "/internal/prom")
            assert (
                value(
                    samples,
                    "dockyard_http_requests_total",
                    method="GET",
                    route="/v2/",
                    status="200",
                )
                >= 1
            )
            assert c.get("/metrics").status_code == 404
    finally:
        on.stop()


def test_metrics_path_under_v2_is_refused(tmp_path: Path) -> None:
    config = ops_config(
        tmp_path / "config.json",
        tmp_path / "data",
        extensions={"metrics": {"prometheus": {"path": "/v2/metrics"}}},
    )
    proc = subprocess.run(
        [sys.executable, "-m", "dockyard", "verify", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "extensions.metrics.prometheus.path" in proc.stderr
