"""The storage backend seam: layout names in one module, filesystem calls behind the
backend, and no storage state outliving (or opened twice by) the process that owns it.
"""

from __future__ import annotations

import ast
import os
import signal
import threading
import uuid
from pathlib import Path

from conftest import start_server
from ops_helpers import ops_doc, signal_server, wait_for, write_json_atomically
from spec_helpers import push_blob
from storage_helpers import client_of

import dockyard.storage

STORAGE = Path(dockyard.storage.__file__).parent
#: Layout names that only ``storage/paths.py`` may spell.
LAYOUT_NAMES = {"blobs", ".uploads", "index.json", "oci-layout", "_dockyard", "cache.db",
                "verified.db", "quarantine"}  # fmt: skip
#: Modules that call the filesystem directly: the backend itself, integrity's hash of
#: an open file (stat'ed around the read), and the coordination files of worker
#: processes (local by nature, like the private SQLite files): the flock files of
#: cross-process locks, upload claims and the lease, the change counter, the catalog's
#: log of new repositories.
DIRECT_FS = {"localfs.py", "integrity.py", "locks.py", "upload_claims.py", "changes.py",
             "catalog.py", "lease.py"}  # fmt: skip
#: Filesystem calls of modules ``os``, ``shutil`` and ``tempfile``.
FS_MODULES = {"os", "shutil", "tempfile"}
#: ``os`` calls that touch no file: names, scheduling and processes (a walker process
#: watching the server process that started it).
OS_PURE = {"getpid", "fspath", "sched_setscheduler", "sched_param", "nice", "stat_result",
           "_exit", "pidfd_open", "kill"}  # fmt: skip
#: Methods only a ``pathlib.Path`` has (the backend has none of these names).
PATH_ONLY = {"mkdir", "iterdir", "touch", "unlink", "write_text", "write_bytes", "is_dir",
             "is_file", "rmdir", "glob", "rglob", "read_text", "chmod"}  # fmt: skip


def _modules() -> list[Path]:
    return sorted(p for p in STORAGE.rglob("*.py") if p.name != "paths.py")


def test_layout_names_are_spelled_only_in_paths_module() -> None:
    found = []
    for path in _modules():
        tree = ast.parse(path.read_text())
        keys = {id(k) for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys}
        for node in ast.walk(tree):
            if id(node) in keys:
                continue  # a log field's name, not a path
            if isinstance(node, ast.Constant) and node.value in LAYOUT_NAMES:
                found.append(f"{path.relative_to(STORAGE)}:{node.lineno} {node.value!r}")
    assert found == []


def test_storage_reaches_the_filesystem_only_through_the_backend() -> None:
    found = []
    for path in _modules():
        if path.name in DIRECT_FS:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id == "open":
                found.append(f"{path.name}:{node.lineno} open()")
            elif isinstance(func, ast.Attribute) and (
                (
                    isinstance(func.value, ast.Name)
                    and func.value.id in FS_MODULES
                    and func.attr not in OS_PURE
                )
                or func.attr in PATH_ONLY
            ):
                found.append(f"{path.name}:{node.lineno} .{func.attr}()")
    assert found == []


def test_importing_storage_starts_no_threads_or_semaphores() -> None:
    import dockyard.storage.store  # noqa: F401 - imports every storage module it needs
    import dockyard.storage.uploads as uploads

    held = [
        name
        for name, value in vars(uploads).items()
        if type(value).__name__ in ("ThreadPoolExecutor", "Semaphore")
    ]
    assert held == []


def test_closing_a_store_stops_its_upload_threads_and_databases(tmp_path: Path) -> None:
    import asyncio

    from dockyard.oci.digest import Digest
    from dockyard.storage.root import RootSettings
    from dockyard.storage.store import Store

    async def body(chunks: list[bytes]):  # type: ignore[no-untyped-def]
        for chunk in chunks:
            yield chunk

    async def push_and_close() -> None:
        store = Store(RootSettings(tmp_path / "data"))
        blobs = store.default.blobs
        session = blobs.start_upload("seam/repo")
        data = os.urandom(600 * 1024)
        await blobs.append(session, body([data]))
        await blobs.finish(session, Digest.of(data))
        assert any(t.name.startswith("upload-io") for t in threading.enumerate())
        store.close()

    asyncio.run(push_and_close())
    assert not any(t.name.startswith("upload-io") for t in threading.enumerate())


def _open_dedupe_maps(pid: int, root: Path) -> int:
    fds = Path(f"/proc/{pid}/fd")
    target = str(root / "_dockyard" / "cache.db")
    count = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == target:
                count += 1
        except OSError:
            continue
    return count


def test_switching_dedupe_off_and_on_again_opens_its_map_once(tmp_path: Path) -> None:
    root, path, log = tmp_path / "data", tmp_path / "config.json", tmp_path / "d.log"
    doc = ops_doc(root, log={"output": str(log)}, storage={"dedupe": False})
    write_json_atomically(path, doc)
    server = start_server(root, config=path)
    repo = f"seam/{uuid.uuid4().hex[:8]}"
    try:
        assert server.proc is not None
        with client_of(server) as c:
            for round_ in range(3):
                for on in (True, False):
                    doc["storage"]["dedupe"] = on
                    write_json_atomically(path, doc)
                    signal_server(server, signal.SIGHUP)
                    wanted = 2 * round_ + (1 if on else 2)
                    wait_for(
                        lambda n=wanted: log.read_text().count("config reloaded") >= n,
                        15,
                        "the reload to be logged",
                    )
                    push_blob(c, repo, os.urandom(1024))  # uses the map while it is on
            assert _open_dedupe_maps(server.proc.pid, root) == 1
    finally:
        server.stop()
