"""Real clients against several workers: skopeo pushes images (each of its connections
may reach another worker) and pulls them back identical, through every worker."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from clients_helpers import Skopeo, assert_same_image
from images import build_image
from ops_helpers import wait_for
from workers_helpers import log_docs, start_workers


def test_skopeo_push_and_pull_with_workers(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 2)
    try:
        images = [build_image(tmp_path / f"src{i}", "v1", layers=4) for i in range(4)]

        def round_trip(i: int) -> None:
            skopeo = Skopeo(tmp_path / f"home{i}")
            ref = f"{server.host}/workers/app{i}:v1"
            skopeo.push(images[i].layout, "v1", ref)
            for n in range(2):
                out = tmp_path / f"out{i}-{n}"
                skopeo.pull(ref, out, "v1")
                assert_same_image(out, "v1", images[i])

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(round_trip, range(4)))

        def served() -> set[object]:
            return {
                d.get("worker") for d in log_docs(server) if d.get("logger") == "dockyard.access"
            }

        # Access lines are flushed within a second: wait for both workers' lines.
        wait_for(lambda: served() == {0, 1}, 10, "the clients' connections to reach both workers")
    finally:
        server.stop()
