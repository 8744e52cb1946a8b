"""What a login costs a replica on a bucket: an API key (a Redis GET, no S3 call) and a
password against docker-registry's htpasswd, in one interleaved run.

    python benchmarks/replica_auth.py                 # 3 rounds of 5 s per phase
    python benchmarks/replica_auth.py --rounds 1 --seconds 3

Starts moto's S3 server and a redis-server on loopback, one ``docker-registry`` (Debian's
2.8.2: the S3 driver, its redis blob-descriptor cache, htpasswd auth) and one ``dockyard
serve --workers 1`` replica (``storageDriver`` on moto, ``cacheDriver`` on Redis, htpasswd
and API keys, as in README "Scale-out"), with one htpasswd file of bcrypt cost 5 and one
small image each. Then, round after round, each phase sends requests from 16 connections
for ``--seconds``: ``GET /v2/`` (a login and nothing else) and a manifest GET by tag,
made by docker-registry with the password, by dockyard with an API key and by dockyard
with the password (checked with bcrypt once, then from its one-minute cache). Prints the
median rate of each phase over the rounds and its ratio to docker-registry's (with the
range of the per-round ratios), and the server CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import bcrypt
import boto3
import httpx
from compare import SRC, free_port, start, stop
from scaleout_compare import AWS_ENV, KEY, REGION, SECRET

USER, PASSWORD = "ci", "ci-password"
REPO = "bench/app"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  s3:
    accesskey: {key}
    secretkey: {secret}
    region: {region}
    regionendpoint: {endpoint}
    bucket: docker-side
    secure: false
    v4auth: true
    rootdirectory: /docker
  cache:
    blobdescriptor: redis
redis:
  addr: 127.0.0.1:{redis_port}
  db: 1
auth:
  htpasswd:
    realm: bench
    path: {htpasswd}
http:
  addr: 127.0.0.1:{port}
  secret: {word}
"""


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def dockyard_config(
    root: Path, endpoint: str, redis_port: int, htpasswd: Path
) -> dict[str, object]:
    return {
        "storage": {
            "rootDirectory": str(root),
            "remoteCache": True,
            "storageDriver": {
                "name": "s3",
                "rootdirectory": "/dockyard",
                "region": REGION,
                "regionendpoint": endpoint,
                "bucket": "dockyard-side",
                "secure": False,
                "accesskey": KEY,
                "secretkey": SECRET,
            },
            "cacheDriver": {
                "name": "redis",
                "url": f"redis://127.0.0.1:{redis_port}/0",
                "keyprefix": "bench",
            },
        },
        "http": {"auth": {"htpasswd": {"path": str(htpasswd)}, "apikey": True}},
        "log": {"level": "warn"},
    }


def wait_answering(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``GET /v2/`` answers at all (401: auth is on)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited:\n{log.read_text()}")
        try:
            httpx.get(f"{url}/v2/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} never answered:\n{log.read_text()}")


def push_image(url: str, auth: str) -> None:
    """One small image, tagged v1: a config, a layer, a manifest."""
    client = httpx.Client(base_url=url, headers={"Authorization": auth}, timeout=60)
    blobs = [json.dumps({"architecture": "amd64", "os": "linux"}).encode(), os.urandom(4096)]
    digests = []
    for blob in blobs:
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        started = client.post(f"/v2/{REPO}/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        sep = "&" if "?" in location else "?"
        put = client.put(f"{location}{sep}digest={digest}", content=blob)
        assert put.status_code == 201, put.text
        digests.append((digest, len(blob)))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digests[0][0],
            "size": digests[0][1],
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digests[1][0],
                "size": digests[1][1],
            }
        ],
    }
    body = json.dumps(manifest).encode()
    put = client.put(f"/v2/{REPO}/manifests/v1", content=body, headers={"Content-Type": MANIFEST})
    assert put.status_code == 201, put.text


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _load(url: str, path: str, auth: str, seconds: float, connections: int) -> int:
    """Requests answered 200 in ``seconds`` from ``connections`` kept-alive connections."""
    done = 0
    stop_at = time.monotonic() + seconds
    headers = {"Authorization": auth, "Accept": MANIFEST}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < stop_at:
                async with session.get(url + path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"{url}{path}: {resp.status}")
                    done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return done


def phase(url: str, pid: int, path: str, auth: str, seconds: float) -> tuple[float, float]:
    """(requests per second, server CPU microseconds per request)."""
    before = cpu_seconds(pid)
    count = asyncio.run(_load(url, path, auth, seconds, 16))
    return count / seconds, (cpu_seconds(pid) - before) / max(count, 1) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--docker-registry", default="/usr/bin/docker-registry")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dockyard-replica-auth-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        s3_port, redis_port = free_port(), free_port()
        moto = Path(sys.executable).with_name("moto_server")
        procs.append(start([str(moto), "-H", "127.0.0.1", "-p", str(s3_port)], work / "moto.log"))
        redis_args = ["--bind", "127.0.0.1", "--port", str(redis_port), "--save", ""]
        redis_args += ["--appendonly", "no", "--dir", str(work)]
        procs.append(start(["redis-server", *redis_args], work / "redis.log"))
        endpoint = f"http://127.0.0.1:{s3_port}"
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                s3.list_buckets()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for bucket in ("docker-side", "dockyard-side"):
            s3.create_bucket(Bucket=bucket)
        htpasswd = work / "htpasswd"
        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(5)).decode()
        htpasswd.write_text(f"{USER}:{hashed}\n")
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {**clean, **AWS_ENV, "PYTHONPATH": str(SRC)}

        docker_port = free_port()
        cfg = work / "docker.yml"
        cfg.write_text(
            DOCKER_CONFIG.format(
                key=KEY,
                secret=SECRET,
                region=REGION,
                endpoint=endpoint,
                redis_port=redis_port,
                htpasswd=htpasswd,
                port=docker_port,
                word=uuid.uuid4().hex,
            )
        )
        docker = start([args.docker_registry, "serve", str(cfg)], work / "docker.log", env)
        procs.append(docker)
        docker_url = f"http://127.0.0.1:{docker_port}"

        port = free_port()
        cfg = work / "dockyard.json"
        cfg.write_text(json.dumps(dockyard_config(work / "local", endpoint, redis_port, htpasswd)))
        serve = [sys.executable, "-m", "dockyard", "serve", str(cfg), "--address", "127.0.0.1"]
        serve += ["--port", str(port), "--workers", "1"]
        dockyard = start(serve, work / "dockyard.log", env)
        procs.append(dockyard)
        dockyard_url = f"http://127.0.0.1:{port}"
        wait_answering(docker_url, docker, work / "docker.log")
        wait_answering(dockyard_url, dockyard, work / "dockyard.log")

        password = basic(USER, PASSWORD)
        push_image(docker_url, password)
        push_image(dockyard_url, password)
        made = httpx.post(
            f"{dockyard_url}/zot/auth/apikey",
            json={"label": "bench"},
            headers={"Authorization": password},
        )
        assert made.status_code == 201, made.text
        with_key = basic(USER, made.json()["apiKey"])

        targets = [
            ("docker-registry, password", docker_url, docker.pid, password),
            ("dockyard, API key", dockyard_url, dockyard.pid, with_key),
            ("dockyard, password", dockyard_url, dockyard.pid, password),
        ]
        paths = [("GET /v2/", "/v2/"), ("manifest GET by tag", f"/v2/{REPO}/manifests/v1")]
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for n in range(args.rounds):
            for what, path in paths:
                for name, url, pid, auth in targets:
                    rate, cpu = phase(url, pid, path, auth, args.seconds)
                    results.setdefault((what, name), []).append((rate, cpu))
                    print(f"round {n + 1} {what:20} {name:26} {rate:8.1f}/s {cpu:8.0f} µs CPU")
        print()
        print("| request | who, how | req/s (median) | ratio | per round | CPU/request |")
        print("|---|---|---|---|---|---|")
        for what, _ in paths:
            base = results[(what, targets[0][0])]
            for name, *_ in targets:
                runs = results[(what, name)]
                rate = statistics.median(r for r, _ in runs)
                ratios = [r / b for (r, _), (b, _) in zip(runs, base, strict=True)]
                cpu = statistics.median(c for _, c in runs)
                ratio = rate / statistics.median(b for b, _ in base)
                print(
                    f"| {what} | {name} | {rate:.1f} | {ratio:.2f}x"
                    f" | {min(ratios):.2f}x to {max(ratios):.2f}x | {cpu:.0f} µs |"
                )
        print(f"logs: {work}")
    finally:
        for proc in reversed(procs):
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
