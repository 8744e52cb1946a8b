"""The Docker CLI against a running dockyard: login, push, pull, through a real daemon.

A private ``dockerd`` (Debian's ``docker.io``) runs for the session on a socket of its own,
with its own data root, no iptables and no bridge, so the machine's Docker (if any) is never
touched. The daemon treats 127.0.0.0/8 as an insecure registry by default, so it talks plain
HTTP to the test servers. Images enter the daemon with ``docker load`` from a tarball that
skopeo writes, because there is no network to pull a base image from.

docker and dockerd are required: if they are missing these tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from auth_helpers import serving, write_config, write_htpasswd
from clients_helpers import Skopeo
from conftest import Server
from images import build_image


class Docker:
    """The docker CLI bound to one daemon socket and one config folder (credentials)."""

    def __init__(self, socket: Path, config_dir: Path) -> None:
        config_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DOCKER_HOST": f"unix://{socket}",
            "DOCKER_CONFIG": str(config_dir),
        }

    def attempt(self, *args: str, stdin: str | None = None) -> tuple[int, str]:
        """Run ``docker ARGS``; its exit status and its output (stdout, then stderr)."""
        proc = subprocess.run(
            ["docker", *args],
            env=self.env,
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            timeout=180,
        )
        return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")

    def run(self, *args: str, stdin: str | None = None) -> str:
        """Run ``docker ARGS``, failing the test with docker's output if it fails."""
        status, output = self.attempt(*args, stdin=stdin)
        if status != 0:
            pytest.fail(f"docker {' '.join(args)} exited {status}:\n{output}")
        return output

    def login(self, host: str, user: str, password: str) -> tuple[int, str]:
        return self.attempt("login", "--username", user, "--password-stdin", host, stdin=password)


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Path]:
    """A private Docker daemon for the session; yields its socket path."""
    for tool in ("docker", "dockerd"):
        assert shutil.which(tool), f"{tool} is not installed (scripts/test installs docker.io)"
    # A unix socket path must stay under 108 bytes, so this lives in /tmp, not tmp_path.
    home = Path(tempfile.mkdtemp(prefix="dockyard-dockerd-", dir="/tmp"))
    socket = home / "docker.sock"
    log = home / "dockerd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root", str(home / "data"),
                "--exec-root", str(home / "exec"),
                "--pidfile", str(home / "docker.pid"),
                "--host", f"unix://{socket}",
                "--iptables=false",
                "--bridge=none",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    probe = Docker(socket, home / "probe")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dockerd exited early:\n{log.read_text()}")
        if socket.exists() and probe.attempt("info")[0] == 0:
            break
        time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError(f"dockerd not ready in 60 s:\n{log.read_text()}")
    yield socket
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    shutil.rmtree(home, ignore_errors=True)


def load_image(docker: Docker, tmp_path: Path, name: str) -> str:
    """Build a fresh image, ``docker load`` it as ``name``; return its image id."""
    image = build_image(tmp_path / "layout", "v1", layers=2)
    archive = tmp_path / "image.tar"
    Skopeo(tmp_path / "skopeo-home").run(
        "copy", "--quiet", f"oci:{image.layout}:v1", f"docker-archive:{archive}:{name}"
    )
    docker.run("load", "--input", str(archive))
    image_id = docker.run("image", "inspect", "--format", "{{.Id}}", name).strip()
    assert image_id == image.config.digest, "docker's image id is not the config digest"
    return image_id


def error_lines(server: Server) -> list[str]:
    """The server's log lines at warning level or above."""
    lines = []
    for line in server.output().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            lines.append(line)  # not JSON: a stray traceback or print
            continue
        if record.get("level") in ("warn", "warning", "error", "fatal", "critical"):
            lines.append(line)
    return lines


def test_docker_push_pull_round_trip(
    dockerd: Path, registry: Server, repo: str, tmp_path: Path
) -> None:
    """docker pushes a loaded image to dockyard, forgets it, and pulls it back intact."""
    docker = Docker(dockerd, tmp_path / "docker-config")
    ref = f"{registry.host}/{repo}:v1"
    image_id = load_image(docker, tmp_path, ref)

    pushed = docker.run("push", ref)
    docker.run("rmi", ref)
    assert docker.run("images", "-q", ref).strip() == ""

    pulled = docker.run("pull", ref)
    assert docker.run("image", "inspect", "--format", "{{.Id}}", ref).strip() == image_id
    digest = pushed.split("digest: ")[1].split()[0]
    assert digest in pulled, "the pull did not resolve to the digest the push reported"

    # The daemon pushed Docker schema 2; dockyard keeps those bytes and their digest.
    head = subprocess.run(
        ["curl", "-sI", f"{registry.url}/v2/{repo}/manifests/{digest}"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert " 200" in head.splitlines()[0]


def test_docker_login_push_pull_with_htpasswd(dockerd: Path, tmp_path: Path) -> None:
    """docker login against htpasswd; a wrong password fails; pushes need the login."""
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "s3cret-Pw"})
    config = write_config(
        tmp_path / "config.json",
        {"auth": {"htpasswd": {"path": str(htpasswd)}}},
        log={"level": "info"},
    )
    docker = Docker(dockerd, tmp_path / "docker-config")
    alice = ("alice", "s3cret-Pw")
    with serving(tmp_path / "data", config) as server:
        ref = f"{server.host}/team/app:1"
        image_id = load_image(docker, tmp_path, ref)

        status, refused = docker.attempt("push", ref)
        assert status != 0, refused
        assert httpx.get(f"{server.url}/v2/team/app/tags/list", auth=alice).status_code == 404

        status, wrong = docker.login(server.host, "alice", "wrong")
        assert status != 0 and "Login Succeeded" not in wrong

        status, ok = docker.login(server.host, "alice", "s3cret-Pw")
        assert status == 0 and "Login Succeeded" in ok, ok
        docker.run("push", ref)
        tags = httpx.get(f"{server.url}/v2/team/app/tags/list", auth=alice).json()
        assert tags == {"name": "team/app", "tags": ["1"]}
        docker.run("rmi", ref)
        docker.run("pull", ref)
        assert docker.run("image", "inspect", "--format", "{{.Id}}", ref).strip() == image_id

        docker.run("logout", server.host)
        docker.run("rmi", ref)
        status, anonymous = docker.attempt("pull", ref)
        assert status != 0, anonymous
        assert docker.run("images", "-q", ref).strip() == ""

        # A client's ordinary behaviour, refusals included, leaves no warning or error.
        assert error_lines(server) == []
