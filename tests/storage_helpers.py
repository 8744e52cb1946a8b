"""Helpers for the storage-engine tests: configs, on-disk inspection, polling.

Pushing goes through ``spec_helpers`` (plain HTTP); what these add is a look at the root the
server writes: blob files and their inodes, ``index.json``, and the SQLite map
``ROOT/_dockyard/cache.db`` (table ``blob_paths(digest, path)``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from conftest import Server, start_server
from spec_helpers import (
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    Pushed,
    dumps,
    push_blob,
    push_manifest,
    sha256_digest,
)

CACHE_DB = Path("_dockyard") / "cache.db"


# -- servers with a config ------------------------------------------------------------------


def write_config(path: Path, root: Path, **storage: Any) -> Path:
    """A JSON config (zot's format) whose ``storage`` section is ``rootDirectory`` + ``storage``."""
    doc = {
        "distSpecVersion": "1.1.1",
        "storage": {"rootDirectory": str(root), **storage},
        "http": {"address": "127.0.0.1", "port": 5000},
        "log": {"level": "info"},
    }
    path.write_text(json.dumps(doc, indent=2))
    return path


@contextmanager
def serving(root: Path, config: Path | None = None, **storage: Any) -> Iterator[Server]:
    """A server on ``root``; with ``storage`` keys, a config file next to the root holds them."""
    if config is None and storage:
        config = write_config(root.parent / f"config-{uuid.uuid4().hex[:6]}.json", root, **storage)
    server = start_server(root, config=config)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def client_of(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


# -- what is on disk --------------------------------------------------------------------------


def blob_file(root: Path, repo: str, digest: str) -> Path:
    """``ROOT/<repo>/blobs/<alg>/<hex>``."""
    algorithm, hex_ = digest.split(":", 1)
    return root / repo / "blobs" / algorithm / hex_


def inode(path: Path) -> int:
    return os.stat(path).st_ino


def blob_files(root: Path) -> list[Path]:
    """Every blob file of every repository under ``root`` (not temp files, not the cache)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in ("_dockyard", ".uploads")]
        folder = Path(dirpath)
        if folder.parent.name != "blobs":
            continue
        found += [folder / name for name in filenames if not name.startswith(".")]
    return sorted(found)


def apparent_and_actual(root: Path) -> tuple[int, int]:
    """(sum of sizes of all blob files, sum of sizes of their distinct inodes)."""
    apparent = 0
    inodes: dict[tuple[int, int], int] = {}
    for path in blob_files(root):
        st = os.stat(path)
        apparent += st.st_size
        inodes[(st.st_dev, st.st_ino)] = st.st_size
    return apparent, sum(inodes.values())


def cache_rows(root: Path, digest: str | None = None) -> list[tuple[str, str]]:
    """Rows of ``blob_paths`` (all, or one digest's), read as another process would."""
    db = sqlite3.connect(root / CACHE_DB, timeout=30)
    try:
        if digest is None:
            rows = db.execute("SELECT digest, path FROM blob_paths ORDER BY digest, path")
        else:
            rows = db.execute(
                "SELECT digest, path FROM blob_paths WHERE digest = ? ORDER BY path", (digest,)
            )
        return [(str(d), str(p)) for d, p in rows.fetchall()]
    finally:
        db.close()


def cache_paths(root: Path, digest: str) -> list[str]:
    """The paths the map records for ``digest``."""
    return [path for _, path in cache_rows(root, digest)]


def index_digests(root: Path, repo: str) -> set[str]:
    """Digests listed in the repository's ``index.json``."""
    doc = json.loads((root / repo / "index.json").read_text())
    return {d["digest"] for d in doc.get("manifests", [])}


# -- time -------------------------------------------------------------------------------------


def wait_until(check: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(step)


def wait_older_than(paths: list[Path], seconds: float, margin: float = 0.3) -> None:
    """Sleep until every file's inode change time is more than ``seconds`` in the past."""
    newest = max(os.stat(p).st_ctime for p in paths)
    remaining = newest + seconds + margin - time.time()
    if remaining > 0:
        time.sleep(remaining)


# -- images with chosen layers ----------------------------------------------------------------


def push_layers_image(
    client: httpx.Client, repo: str, layers: list[bytes], ref: str | None = None
) -> Pushed:
    """Push a fresh config, the given layer bytes and an image manifest over them.

    Unlike ``spec_helpers.push_image`` the layers are chosen by the caller, so images can
    share a base layer. ``Pushed.blobs`` is the config digest, then the layer digests.
    """
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": uuid.uuid4().hex})
    config_digest = push_blob(client, repo, config.encode())
    layer_descs = [
        {"mediaType": OCI_LAYER, "digest": push_blob(client, repo, data), "size": len(data)}
        for data in layers
    ]
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": layer_descs,
    }
    pushed = Pushed(
        body=dumps(manifest),
        media_type=OCI_MANIFEST,
        manifest=manifest,
        blobs=[config_digest, *(d["digest"] for d in layer_descs)],
    )
    return push_manifest(client, repo, pushed, ref)


def pull_all(client: httpx.Client, repo: str, pushed: Pushed, ref: str | None = None) -> None:
    """GET the manifest (by ``ref`` or digest) and every blob; each must come back whole."""
    resp = client.get(
        f"/v2/{repo}/manifests/{ref or pushed.digest}", headers={"Accept": pushed.media_type}
    )
    assert resp.status_code == 200, f"GET manifest {repo}: {resp.status_code} {resp.text}"
    assert resp.content == pushed.body
    for digest in pushed.blobs:
        blob = client.get(f"/v2/{repo}/blobs/{digest}")
        assert blob.status_code == 200, f"GET {repo}@{digest}: {blob.status_code} {blob.text}"
        assert sha256_digest(blob.content) == digest, f"{repo}@{digest}: wrong bytes"


MiB = 1024**2
#: The piece size large-blob tests send and read in.
CHUNK = MiB


def payload(total: int, sink: hashlib._Hash) -> Iterator[bytes]:
    """``total`` bytes of random-looking data in 1 MiB chunks, fed to ``sink`` as they go.

    One random MiB is drawn once; each chunk stamps its counter over the start of it, so no
    two chunks are equal yet generating 1 GiB costs almost nothing.
    """
    base = bytearray(os.urandom(CHUNK))
    sent = 0
    counter = 0
    while sent < total:
        base[:16] = counter.to_bytes(8, "big") + os.urandom(8)
        chunk = bytes(base[: min(CHUNK, total - sent)])
        sink.update(chunk)
        sent += len(chunk)
        counter += 1
        yield chunk


def vm_hwm(pid: int) -> int:
    """Peak resident set size of ``pid`` in bytes (VmHWM in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (worker processes count as the server too)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("PPid:"):
                children.setdefault(int(line.split()[1]), []).append(int(entry.name))
                break
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree
