"""dockyard against the Docker registry (CNCF distribution), side by side, in one command.

    python benchmarks/compare.py                 # full run: 3 repetitions, 10-20 minutes
    python benchmarks/compare.py --quick         # under a minute
    python benchmarks/compare.py -- --workloads 'push-mono-*' --repeat 5

Starts Debian's ``docker-registry`` and ``dockyard serve`` on free loopback ports, each on
an empty root of its own, with logging at warn/error and no access log, then runs
``dockyard bench DOCKER_URL DOCKYARD_URL`` with both PIDs, so every ratio it prints is
dockyard / docker-registry. Both servers are stopped and their roots removed afterwards.
Arguments after ``--`` go to ``dockyard bench`` unchanged.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

DOCKER_CONFIG = """\
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
"""
DOCKYARD_CONFIG = "log:\n  level: warn\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Until ``GET /v2/`` answers 200; the server's log if it dies or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise SystemExit(f"{url}: not ready after {timeout} s:\n{log.read_text()}")


def start(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="dockyard bench --quick")
    parser.add_argument("--json", type=Path, help="results file (default: /tmp, timestamped)")
    parser.add_argument("--workdir", type=Path, help="where the two roots go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the roots and server logs")
    parser.add_argument("--docker-registry", default="/usr/bin/docker-registry")
    parser.add_argument(
        "--dockyard-src", type=Path, default=SRC, help="the src/ dockyard is served from"
    )
    parser.add_argument("bench_args", nargs=argparse.REMAINDER, help="-- then dockyard bench args")
    args = parser.parse_args()
    extra = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args

    if not Path(args.docker_registry).is_file():
        raise SystemExit(f"{args.docker_registry} not found: apt-get install docker-registry")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = args.json or Path(tempfile.gettempdir()) / f"dockyard-compare-{stamp}.json"
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dockyard-compare-"))
    workdir.mkdir(parents=True, exist_ok=True)

    docker_port, dockyard_port = free_port(), free_port()
    docker_root, dockyard_root = workdir / "docker-root", workdir / "dockyard-root"
    (workdir / "docker.yml").write_text(DOCKER_CONFIG.format(root=docker_root, port=docker_port))
    (workdir / "dockyard.yml").write_text(DOCKYARD_CONFIG)
    # The server may come from another tree (a commit exported to compare against); the
    # bench always runs from this checkout.
    server_env = {**os.environ, "PYTHONPATH": str(args.dockyard_src.resolve())}
    bench_env = {**os.environ, "PYTHONPATH": str(SRC)}

    servers: list[subprocess.Popen[bytes]] = []
    try:
        docker = start(
            [args.docker_registry, "serve", str(workdir / "docker.yml")], workdir / "docker.log"
        )
        servers.append(docker)
        dockyard = start(
            [
                sys.executable,
                "-m",
                "dockyard",
                "serve",
                str(workdir / "dockyard.yml"),
                "--address",
                "127.0.0.1",
                "--port",
                str(dockyard_port),
                "--root",
                str(dockyard_root),
            ],
            workdir / "dockyard.log",
            server_env,
        )
        servers.append(dockyard)
        docker_url = f"http://127.0.0.1:{docker_port}"
        dockyard_url = f"http://127.0.0.1:{dockyard_port}"
        wait_ready(docker_url, docker, workdir / "docker.log")
        wait_ready(dockyard_url, dockyard, workdir / "dockyard.log")
        cmd = [
            sys.executable,
            "-m",
            "dockyard",
            "bench",
            docker_url,
            dockyard_url,
            "--pid",
            str(docker.pid),
            "--pid",
            str(dockyard.pid),
            "--name",
            "docker-registry",
            "--name",
            "dockyard",
            "--json",
            str(json_path),
            *(["--quick"] if args.quick else []),
            *extra,
        ]
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        code = subprocess.call(cmd, env=bench_env)
        print(f"results: {json_path}", file=sys.stderr)
        return code
    finally:
        for proc in servers:
            stop(proc)
        if args.keep:
            print(f"kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
