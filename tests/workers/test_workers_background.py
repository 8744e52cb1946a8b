"""Background jobs run in one worker at a time: the one holding the lease (an flock of
``_dockyard/leader``); when it dies, another takes the jobs over."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
from ops_helpers import wait_for
from spec_helpers import push_blob, random_blob
from storage_helpers import blob_file, write_config
from workers_helpers import log_docs, start_workers, worker_pids

TAKES_OVER = "runs the background jobs"


def _flock_holders(path: Path) -> set[int]:
    """Pids holding an flock on ``path`` (from /proc/locks)."""
    ino = str(path.stat().st_ino)
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        parts = line.split()
        if len(parts) > 5 and parts[1] == "FLOCK" and parts[5].split(":")[-1] == ino:
            holders.add(int(parts[4]))
    return holders


def _leaders(server: object) -> list[int | None]:
    return [d.get("worker") for d in log_docs(server) if TAKES_OVER in str(d["message"])]  # type: ignore[arg-type]


def test_one_worker_runs_gc_and_another_takes_over_when_it_dies(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = write_config(tmp_path / "config.json", root, gcDelay="1s", gcInterval="1s")
    server = start_workers(root, 3, config=config)
    lease = root / "_dockyard" / "leader"
    try:
        wait_for(lambda: len(_leaders(server)) == 1, 10, "one worker to take the lease")
        holders = _flock_holders(lease)
        assert len(holders) == 1 and holders <= set(worker_pids(server))
        (leader,) = holders

        # A blob nothing references is collected by the periodic pass, in the leader.
        with httpx.Client(base_url=server.url, timeout=30) as c:
            orphan = push_blob(c, "bg/app", random_blob(100))
        wait_for(lambda: not blob_file(root, "bg/app", orphan).exists(), 20, "periodic GC")

        os.kill(leader, signal.SIGKILL)
        wait_for(lambda: len(_leaders(server)) == 2, 20, "another worker to take over")
        holders = _flock_holders(lease)
        assert len(holders) == 1 and leader not in holders
        assert holders <= set(worker_pids(server))
        with httpx.Client(base_url=server.url, timeout=30) as c:
            orphan = push_blob(c, "bg/app", random_blob(100))
        wait_for(lambda: not blob_file(root, "bg/app", orphan).exists(), 20, "GC after takeover")
        # The pid that took over logged it (the killed worker's slot may be restarted
        # and win the lease: what matters is that one process holds it).
        assert len(_flock_holders(lease)) == 1
    finally:
        server.stop()
