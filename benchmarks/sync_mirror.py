"""Mirroring figures: an on-demand pull of a large blob, and periodic passes over 100 images.

Starts Debian's docker-registry as the upstream (plain HTTP on loopback, no auth) and a
dockyard mirroring it. Measures, with one streaming HTTP client that discards the bytes:

1. pulling the blob from the upstream directly: time to first byte and total;
2. the first pull through dockyard (on demand, nothing local): time to first byte and total;
3. the second pull through dockyard (served from its store);
4. ``dockyard sync CONFIG --once`` over 100 small images: wall time and bytes moved,
   then a second pass: wall time and bytes moved (zero expected).

Usage: python benchmarks/sync_mirror.py [--size-mib 512] [--images 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from common import OCI_MANIFEST, free_port, start_dockyard

CHUNK = 8 * 1024 * 1024


def _chunks(size: int, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    left = size
    while left:
        n = min(CHUNK, left)
        yield rng.randbytes(n)
        left -= n


def start_docker_registry(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {workdir / 'upstream'}}}}}\n"
        f"http: {{addr: '127.0.0.1:{port}'}}\n"
    )
    proc = subprocess.Popen(
        ["/usr/bin/docker-registry", "serve", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(400):
        try:
            if httpx.get(f"{url}/v2/", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("docker-registry did not start")


def push_blob(c: httpx.Client, repo: str, size: int, seed: int) -> str:
    hasher = hashlib.sha256()
    for chunk in _chunks(size, seed):
        hasher.update(chunk)
    digest = f"sha256:{hasher.hexdigest()}"
    start = c.post(f"/v2/{repo}/blobs/uploads/")
    start.raise_for_status()
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    done = c.put(
        f"{location}{sep}digest={digest}",
        content=_chunks(size, seed),
        headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
    )
    done.raise_for_status()
    return digest


def push_small(c: httpx.Client, repo: str, data: bytes) -> dict[str, object]:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    start = c.post(f"/v2/{repo}/blobs/uploads/")
    location = start.headers["Location"]
    sep = "&" if "?" in location else "?"
    c.put(f"{location}{sep}digest={digest}", content=data).raise_for_status()
    return {"digest": digest, "size": len(data)}


def timed_pull(url: str) -> tuple[float, float, int]:
    """(seconds to first byte, seconds in total, bytes) for one streaming GET."""
    start = time.perf_counter()
    first = 0.0
    got = 0
    with httpx.stream("GET", url, timeout=600) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw(1024 * 1024):
            if not got:
                first = time.perf_counter() - start
            got += len(chunk)
    return first, time.perf_counter() - start, got


def sync_once(config: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dockyard", "sync", str(config), "--once"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    return time.perf_counter() - start, done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    size = args.size_mib * 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="sync-bench-") as tmp:
        work = Path(tmp)
        upstream, up_url = start_docker_registry(work)
        procs = [upstream]
        try:
            with httpx.Client(base_url=up_url, timeout=600) as c:
                digest = push_blob(c, "big/blob", size, seed=1)
                for i in range(args.images):
                    repo = f"bench/img-{i:03d}"
                    config = push_small(c, repo, json.dumps({"i": i}).encode())
                    layers = [push_small(c, repo, os.urandom(16 * 1024)) for _ in range(2)]
                    manifest = {
                        "schemaVersion": 2,
                        "mediaType": OCI_MANIFEST,
                        "config": {
                            "mediaType": "application/vnd.oci.image.config.v1+json",
                            **config,
                        },
                        "layers": [
                            {"mediaType": "application/vnd.oci.image.layer.v1.tar", **layer}
                            for layer in layers
                        ],
                    }
                    c.put(
                        f"/v2/{repo}/manifests/v1",
                        content=json.dumps(manifest).encode(),
                        headers={"Content-Type": OCI_MANIFEST},
                    ).raise_for_status()
            registry = {"urls": [up_url], "onDemand": True, "content": [{"prefix": "big/**"}]}
            mirror, url = start_dockyard(
                {
                    "storage": {"rootDirectory": str(work / "mirror")},
                    "extensions": {"sync": {"registries": [registry]}},
                },
                work,
            )
            procs.append(mirror)
            direct = timed_pull(f"{up_url}/v2/big/blob/blobs/{digest}")
            first = timed_pull(f"{url}/v2/big/blob/blobs/{digest}")
            second = timed_pull(f"{url}/v2/big/blob/blobs/{digest}")
            mib = size / 1024 / 1024
            print(f"blob of {args.size_mib} MiB")
            for label, (ttfb, total, got) in (
                ("upstream directly", direct),
                ("dockyard, first pull (on demand)", first),
                ("dockyard, second pull (local)", second),
            ):
                assert got == size, (label, got)
                print(
                    f"  {label:34s} first byte {ttfb * 1000:8.1f} ms   total {total:6.2f} s"
                    f"   {mib / total:7.1f} MiB/s"
                )
            print(
                f"  first pull vs direct: total {first[1] / direct[1]:.2f}x, "
                f"second pull vs direct: {second[1] / direct[1]:.2f}x"
            )
            sync_config = work / "sync.json"
            periodic = {
                "urls": [up_url],
                "pollInterval": "1h",
                "content": [{"prefix": "bench/**"}],
            }
            sync_config.write_text(
                json.dumps(
                    {
                        "storage": {"rootDirectory": str(work / "periodic")},
                        "extensions": {"sync": {"registries": [periodic]}},
                    }
                )
            )
            for label in ("first pass", "second pass"):
                seconds, out = sync_once(sync_config)
                moved = re.search(r"(\d+) bytes", out)
                print(
                    f"periodic {label} over {args.images} images: {seconds:.2f} s wall, "
                    f"{moved[1] if moved else '?'} blob bytes moved ({out})"
                )
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
