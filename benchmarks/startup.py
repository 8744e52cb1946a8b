"""How long until ``GET /v2/`` answers on a root with many repositories.

    python benchmarks/startup.py --repos 10000

Start-up must not walk the store: the catalog is loaded in the background after the
listener is up. Prints the readiness time, and the time of the first ``_catalog``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx
from common import start_dockyard, write_repo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repos", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        for i in range(args.repos):
            write_repo(root / f"org{i % 100}" / f"repo{i}", images=1)
        started = time.monotonic()
        proc, url = start_dockyard({"storage": {"rootDirectory": str(root)}}, Path(tmp))
        ready = time.monotonic() - started
        t0 = time.monotonic()
        listed = httpx.get(f"{url}/v2/_catalog", params={"n": 100000}, timeout=120).json()
        catalog = time.monotonic() - t0
        proc.terminate()
        proc.wait()
    print(f"repos={args.repos} ready={ready:.2f}s (process start to GET /v2/ 200)")
    print(f"first _catalog listed {len(listed['repositories'])} repos in {catalog:.2f}s")


if __name__ == "__main__":
    main()
