"""Repository locks hold across worker processes: tags put at once through every worker,
each on a fresh connection, are all kept (a lost update of index.json would drop some)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from spec_helpers import image_manifest, list_tags
from workers_helpers import fresh, start_workers, workers_of


def test_tags_put_at_once_through_every_worker_are_all_kept(tmp_path: Path) -> None:
    server = start_workers(tmp_path / "data", 2)
    repo = "locks/many-tags"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            pushed = image_manifest(c, repo)
        tags = [f"t{i}" for i in range(60)]

        def put(tag: str) -> tuple[int, str]:
            resp, rid = fresh(
                server,
                "PUT",
                f"/v2/{repo}/manifests/{tag}",
                content=pushed.body,
                headers={"Content-Type": pushed.media_type},
            )
            return resp.status_code, rid

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(put, tags))
        assert [status for status, _ in results] == [201] * len(tags)
        assert workers_of(server, [rid for _, rid in results]) == {0, 1}
        with httpx.Client(base_url=server.url, timeout=30) as c:
            assert sorted(list_tags(c, repo)) == sorted(tags)
    finally:
        server.stop()
