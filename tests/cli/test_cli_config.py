"""The ``dockyard`` command line and its config file, as a zot user switching over meets them.

``dockyard verify CONFIG`` checks a config (zot's keys, JSON or YAML) and exits 0, or 2 with
a message naming the bad key; keys zot has but dockyard does not implement are named in a
warning and ignored. ``dockyard serve`` honours the file's port, lets ``--port`` override
it, refuses a bad file with exit 2, and without any config or ``--root`` stores its data in
``./dockyard-data``. The CLI always runs as a subprocess, ``python -m dockyard``.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import Server, free_port


def dockyard(
    *args: str, cwd: Path | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dockyard ARGS`` to completion and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "dockyard", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def zot_config(tmp_path: Path, port: int | str = 5000) -> dict[str, Any]:
    """A valid config using only the zot keys dockyard implements."""
    root = tmp_path / "zot-data"
    root.mkdir(exist_ok=True)
    return {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root)},
        "http": {"address": "127.0.0.1", "port": port},
        "log": {"level": "debug", "output": str(tmp_path / "dockyard.log")},
    }


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write ``config`` as JSON or YAML, by the file's extension."""
    if path.suffix in (".yaml", ".yml"):
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        path.write_text(json.dumps(config, indent=2))
    return path


def with_value(config: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    """A copy of ``config`` with the key at ``dotted`` (e.g. ``http.port``) set to ``value``."""
    out = json.loads(json.dumps(config))
    node = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


def push_blob(base_url: str, repo: str, data: bytes) -> str:
    """Push ``data`` as a blob (POST then PUT ?digest=) and return its digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        start = client.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        done = client.put(
            httpx.URL(start.headers["Location"]).copy_add_param("digest", digest),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
    return digest


def listening(port: int) -> bool:
    """Whether something answers HTTP on 127.0.0.1:``port``."""
    try:
        httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
    except httpx.HTTPError:
        return False
    return True


@contextmanager
def serving(args: list[str], port: int, cwd: Path, timeout: float = 20) -> Iterator[None]:
    """Run ``dockyard serve ARGS`` in ``cwd`` until /v2/ answers on ``port``; stop it after."""
    log = cwd / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard", "serve", *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"serve exited {proc.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"serve not ready in {timeout}s:\n{log.read_text()}")
            time.sleep(0.05)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.parametrize("port", ["5000", 5000], ids=["port-string", "port-number"])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_verify_accepts_zot_config(tmp_path: Path, suffix: str, port: str | int) -> None:
    """``dockyard verify`` exits 0 for a zot config in JSON or YAML, port as string or number."""
    config = write_config(tmp_path / f"config{suffix}", zot_config(tmp_path, port))
    proc = dockyard("verify", str(config))
    assert proc.returncode == 0, proc.stderr


def test_verify_accepts_handwritten_yaml(tmp_path: Path) -> None:
    """A YAML config as a person writes it (comments, bare number port) verifies."""
    config = tmp_path / "config.yml"
    config.write_text(
        "# dockyard, configured the zot way\n"
        "distSpecVersion: 1.1.1\n"
        "storage:\n"
        f"  rootDirectory: {tmp_path}\n"
        "http:\n"
        "  address: 127.0.0.1\n"
        "  port: 8080\n"
        "log:\n"
        "  level: info\n"
        f"  output: {tmp_path / 'dockyard.log'}\n"
    )
    proc = dockyard("verify", str(config))
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("http.port", "abc"),
        ("http.port", 70000),
        ("log.level", "loud"),
        ("storage.rootDirectory", 5),
    ],
    ids=["port-abc", "port-70000", "level-loud", "root-number"],
)
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_verify_rejects_bad_value_naming_the_key(
    tmp_path: Path, suffix: str, key: str, value: object
) -> None:
    """A bad value makes ``dockyard verify`` exit 2 with an error naming the dotted key."""
    config = write_config(
        tmp_path / f"config{suffix}", with_value(zot_config(tmp_path), key, value)
    )
    proc = dockyard("verify", str(config))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert key in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [("config.json", '{"http": {"port": "5000",}'), ("config.yaml", "http: [port: 5000\n")],
    ids=["json", "yaml"],
)
def test_verify_rejects_unparseable_file(tmp_path: Path, name: str, text: str) -> None:
    """A config that is not valid JSON/YAML makes ``dockyard verify`` exit 2, no traceback."""
    config = tmp_path / name
    config.write_text(text)
    proc = dockyard("verify", str(config))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip(), "no error message"
    assert "Traceback" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_unimplemented_zot_key_is_warned_about_and_ignored(tmp_path: Path, suffix: str) -> None:
    """A zot key dockyard lacks (extensions.lint) is named in a warning on stderr; exit 0."""
    config = with_value(zot_config(tmp_path), "extensions.lint", {"enable": True})
    path = write_config(tmp_path / f"config{suffix}", config)
    proc = dockyard("verify", str(path))
    assert proc.returncode == 0, proc.stderr
    assert "extensions.lint" in proc.stderr, proc.stderr
    assert any(word in proc.stderr.lower() for word in ("warn", "ignor")), proc.stderr


@pytest.mark.parametrize("where", ["storage", "storage.subPaths./a"])
@pytest.mark.parametrize(
    ("driver", "key"),
    [
        ({"name": "gcs", "bucket": "registry"}, "storageDriver.name"),
        ({"name": "s3", "region": "us-east-1"}, "storageDriver.bucket"),
    ],
    ids=["other-driver", "no-bucket"],
)
def test_a_storage_driver_other_than_s3_or_without_bucket_is_refused(
    tmp_path: Path, where: str, driver: dict[str, str], key: str
) -> None:
    """Only zot's ``s3`` driver exists: any other (or one without a bucket) would serve
    from somewhere the user did not mean, so verify and serve refuse it with exit 2."""
    config = zot_config(tmp_path)
    if where != "storage":
        config["storage"]["subPaths"] = {"/a": {"rootDirectory": str(tmp_path / "a")}}
    section = config["storage"] if where == "storage" else config["storage"]["subPaths"]["/a"]
    section["storageDriver"] = driver
    path = write_config(tmp_path / "s3.json", config)
    for command in (["verify"], ["serve", "--port", str(free_port())]):
        proc = dockyard(*command, str(path), timeout=20)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        assert f"{where}.{key}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("key", "value"), [("http.port", "abc"), ("log.level", "loud")], ids=["port", "level"]
)
def test_serve_with_bad_config_exits_2(tmp_path: Path, key: str, value: object) -> None:
    """``dockyard serve`` refuses a bad config: exit 2, the key named, nothing listening."""
    config = write_config(tmp_path / "bad.json", with_value(zot_config(tmp_path), key, value))
    port = free_port()
    proc = dockyard(
        "serve", str(config), "--port", str(port), "--root", str(tmp_path / "data"), timeout=20
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert key in proc.stderr, proc.stderr
    assert not listening(port)


def test_serve_listens_on_the_config_port(tmp_path: Path) -> None:
    """``dockyard serve CONFIG`` listens on the port the file gives (string, zot-style)."""
    port = free_port()
    config = write_config(tmp_path / "config.json", zot_config(tmp_path, str(port)))
    server = Server(root=tmp_path / "data", port=port, args=[str(config)])
    try:
        server.start()
        assert httpx.get(f"{server.url}/v2/", timeout=5).status_code == 200
    finally:
        server.stop()


def test_serve_stores_data_in_the_config_root(tmp_path: Path) -> None:
    """``storage.rootDirectory`` from the config file is where pushed blobs land."""
    port = free_port()
    config = zot_config(tmp_path, port)
    path = write_config(tmp_path / "config.yaml", config)
    server = Server(root=tmp_path / "data", port=port, args=[str(path)])
    try:
        server.start()
        digest = push_blob(server.url, "cfg/root", os.urandom(1000))
    finally:
        server.stop()
    stored = Path(config["storage"]["rootDirectory"]) / "cfg/root/blobs/sha256"
    assert (stored / digest.split(":", 1)[1]).is_file()


def test_port_flag_overrides_config_port(tmp_path: Path) -> None:
    """``--port`` on the command line wins over the config file's http.port."""
    config_port, flag_port = free_port(), free_port()
    while flag_port == config_port:
        flag_port = free_port()
    config = write_config(tmp_path / "config.json", zot_config(tmp_path, config_port))
    server = Server(
        root=tmp_path / "data", port=flag_port, args=[str(config), "--port", str(flag_port)]
    )
    try:
        server.start()
        assert httpx.get(f"{server.url}/v2/", timeout=5).status_code == 200
        assert not listening(config_port)
    finally:
        server.stop()


def test_serve_without_config_or_root_uses_dockyard_data_in_cwd(tmp_path: Path) -> None:
    """With no config and no --root, ``serve`` keeps its data in ./dockyard-data."""
    port = free_port()
    with serving(["--address", "127.0.0.1", "--port", str(port)], port, cwd=tmp_path):
        digest = push_blob(f"http://127.0.0.1:{port}", "cwd/default", os.urandom(1000))
        data_dir = tmp_path / "dockyard-data"
        assert data_dir.is_dir()
        assert (data_dir / "cwd/default/blobs/sha256" / digest.split(":", 1)[1]).is_file()
