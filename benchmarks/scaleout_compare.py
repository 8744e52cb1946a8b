"""Scale-out: dockyard replicas against docker-registry 2.8.2 replicas, on one moto bucket
and one Redis each side, in one command.

    python benchmarks/scaleout_compare.py            # 3 repetitions
    python benchmarks/scaleout_compare.py --quick    # 1 repetition
    python benchmarks/scaleout_compare.py --part blobs --blob-size 1g   # issue 12's size

Starts moto's S3 server and a redis-server on loopback, then three replicas of each
registry: docker-registry (Debian's, CNCF distribution 2.8.2: the S3 driver on moto, its
redis blob-descriptor cache, one shared ``http.secret``) and ``dockyard serve`` (its
``storageDriver`` on moto, its ``cacheDriver`` on Redis, a local folder of its own each).
Each side has a bucket and a Redis key space of its own. Then:

1. ``dockyard bench`` push and pull of a 100 MiB blob (``--blob-size 1g``: 1 GiB)
   through one replica of each (``push-mono-100m-c1``, ``pull-100m-c1``);
2. manifest GET by tag at 64 connections on each of the three replicas at once: three
   ``dockyard bench`` processes, one per replica pair, whose targets alternate, so the
   two registries are measured interleaved. Their rates are summed per registry.

Every ratio is dockyard / docker-registry. moto is a Python process on the same cores,
so blob figures say what each registry adds to the same slow store, not what AWS gives.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from compare import SRC, free_port, start, stop, wait_ready

KEY, SECRET, REGION = "bench", "bench-secret", "us-east-1"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}

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
    bucket: {bucket}
    secure: false
    v4auth: true
    rootdirectory: /docker
  cache:
    blobdescriptor: redis
  delete:
    enabled: true
  redirect:
    disable: true
redis:
  addr: 127.0.0.1:{redis_port}
  db: 1
http:
  addr: 127.0.0.1:{port}
  secret: {secret_word}
"""


def dockyard_config(root: Path, endpoint: str, bucket: str, redis_port: int) -> dict[str, Any]:
    return {
        "storage": {
            "rootDirectory": str(root),
            "remoteCache": True,
            "storageDriver": {
                "name": "s3",
                "rootdirectory": "/dockyard",
                "region": REGION,
                "regionendpoint": endpoint,
                "bucket": bucket,
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
        "log": {"level": "warn"},
    }


def bench(
    urls: list[str], pids: list[int], workloads: str, repeat: int, out: Path
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "dockyard", "bench", *urls, "--workloads", workloads]
    cmd += ["--name", "docker-registry", "--name", "dockyard", "--repeat", str(repeat)]
    cmd += ["--no-progress", "--json", str(out)]
    for pid in pids:
        cmd += ["--pid", str(pid)]
    return subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(SRC)})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one repetition")
    parser.add_argument("--docker-registry", default="/usr/bin/docker-registry")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument(
        "--part", choices=["all", "blobs", "manifests"], default="all", help="what to run"
    )
    parser.add_argument(
        "--blob-size",
        choices=["100m", "1g"],
        default="100m",
        help="the blob pushed and pulled through one replica (1g: minutes per round on moto)",
    )
    parser.add_argument(
        "--blob-workloads",
        help="the blob part's workloads instead of --blob-size's push and pull "
        "(pull-1m-c8 shows a GET's per-request costs)",
    )
    args = parser.parse_args()
    repeat = 1 if args.quick else 3
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dockyard-scaleout-"))
    work.mkdir(parents=True, exist_ok=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        s3_port, redis_port = free_port(), free_port()
        moto = Path(sys.executable).with_name("moto_server")
        procs.append(start([str(moto), "-H", "127.0.0.1", "-p", str(s3_port)], work / "moto.log"))
        procs.append(
            start(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(work),
                ],
                work / "redis.log",
            )
        )
        endpoint = f"http://127.0.0.1:{s3_port}"
        deadline = time.monotonic() + 30
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
            region_name=REGION,
        )
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
        # The machine's own AWS_* variables (a CA bundle, a profile) must not reach a
        # client pointed at moto: distribution's SDK panics on AWS_CA_BUNDLE, for one.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env = {**clean, **AWS_ENV, "PYTHONPATH": str(SRC)}
        secret_word = uuid.uuid4().hex
        docker: list[tuple[str, subprocess.Popen[bytes]]] = []
        dockyard: list[tuple[str, subprocess.Popen[bytes]]] = []
        for n in range(3):
            port = free_port()
            cfg = work / f"docker-{n}.yml"
            cfg.write_text(
                DOCKER_CONFIG.format(
                    key=KEY,
                    secret=SECRET,
                    region=REGION,
                    endpoint=endpoint,
                    bucket="docker-side",
                    redis_port=redis_port,
                    port=port,
                    secret_word=secret_word,
                )
            )
            proc = start([args.docker_registry, "serve", str(cfg)], work / f"docker-{n}.log", env)
            procs.append(proc)
            docker.append((f"http://127.0.0.1:{port}", proc))
            port = free_port()
            cfg = work / f"dockyard-{n}.json"
            root = work / f"dockyard-{n}-local"
            cfg.write_text(json.dumps(dockyard_config(root, endpoint, "dockyard-side", redis_port)))
            cmd = [
                sys.executable,
                "-m",
                "dockyard",
                "serve",
                str(cfg),
                "--address",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ]
            proc = start(cmd, work / f"dockyard-{n}.log", env)
            procs.append(proc)
            dockyard.append((f"http://127.0.0.1:{port}", proc))
        for n, (url, proc) in enumerate(docker):
            wait_ready(url, proc, work / f"docker-{n}.log")
        for n, (url, proc) in enumerate(dockyard):
            wait_ready(url, proc, work / f"dockyard-{n}.log")

        if args.part in ("all", "blobs"):
            print("== blobs through one replica each", flush=True)
            blobs = bench(
                [docker[0][0], dockyard[0][0]],
                [docker[0][1].pid, dockyard[0][1].pid],
                args.blob_workloads or f"push-mono-{args.blob_size}-c1,pull-{args.blob_size}-c1",
                repeat,
                work / "blobs.json",
            )
            if blobs.wait() != 0:
                print("blob bench had failures", file=sys.stderr)
        if args.part in ("all", "manifests"):
            print(
                "== manifest GET by tag, 64 connections on each of 3 replicas at once", flush=True
            )
            runs = [
                bench(
                    [docker[n][0], dockyard[n][0]],
                    [docker[n][1].pid, dockyard[n][1].pid],
                    "manifest-get-c64",
                    repeat,
                    work / f"manifests-{n}.json",
                )
                for n in range(3)
            ]
            for run in runs:
                run.wait()
        print(f"raw results: {work}/blobs.json, {work}/manifests-*.json")
    finally:
        for proc in reversed(procs):
            stop(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
