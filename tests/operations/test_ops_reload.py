"""Config hot reload, on SIGHUP and on a change of the file: behaviour changes, connections
stay, settings that need a restart are named in a warning, a broken file changes nothing.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import httpx
from conftest import start_server
from ops_helpers import (
    access_lines,
    json_lines,
    ops_doc,
    scrape,
    server_on_config,
    signal_server,
    value,
    wait_for,
    with_free_port,
    write_json_atomically,
)
from spec_helpers import push_blob, push_image
from storage_helpers import blob_file, client_of


def test_sighup_switches_gc_on_and_raises_log_level(tmp_path: Path) -> None:
    root, log_file, path = tmp_path / "data", tmp_path / "d.log", tmp_path / "config.json"
    quiet = {"level": "warn", "output": str(log_file)}
    doc = ops_doc(root, log=quiet, storage={"gc": False, "gcDelay": "0s"})
    write_json_atomically(path, doc)
    server = start_server(root, config=path)
    repo = f"reload/{uuid.uuid4().hex[:8]}"
    try:
        # One connection for the whole test: a reload must not drop it.
        with client_of(server) as c:
            old = push_image(c, repo, "v1")
            assert c.delete(f"/v2/{repo}/manifests/{old.digest}").status_code == 202
            assert c.get(f"/v2/{repo}/blobs/{old.blobs[1]}").status_code == 200  # GC is off
            assert access_lines(log_file.read_text()) == []

            doc["storage"]["gc"] = True
            doc["log"]["level"] = "info"
            write_json_atomically(path, doc)
            signal_server(server, signal.SIGHUP)
            wait_for(
                lambda: "config reloaded" in log_file.read_text(), 10, "the reload to be logged"
            )
            newer = push_image(c, repo, "v2")
            assert c.delete(f"/v2/{repo}/manifests/{newer.digest}").status_code == 202
            wait_for(
                lambda: not blob_file(root, repo, old.blobs[1]).exists(),
                10,
                "GC, now on, to remove the orphaned layer",
            )
            assert c.get(f"/v2/{repo}/blobs/{old.blobs[1]}").status_code == 404
            lines = access_lines(log_file.read_text())
            assert any(d["method"] == "DELETE" for d in lines), lines
    finally:
        server.stop()
    reloaded = [d for d in json_lines(log_file.read_text()) if "config reloaded" in d["message"]]
    assert "storage.gc" in reloaded[0]["changed"] and "log.level" in reloaded[0]["changed"]


def test_file_change_switches_dedupe_on_without_a_signal(tmp_path: Path) -> None:
    root, path = tmp_path / "data", tmp_path / "config.json"
    doc = ops_doc(root, storage={"dedupe": False})
    write_json_atomically(path, doc)
    server = start_server(root, config=path)
    a, b = f"dd/a{uuid.uuid4().hex[:6]}", f"dd/b{uuid.uuid4().hex[:6]}"
    try:
        with client_of(server) as c:
            digest = push_blob(c, a, os.urandom(8192))
            push_blob(c, b, b"b exists")
            assert c.head(f"/v2/{b}/blobs/{digest}").status_code == 404  # no dedupe, no link

            doc["storage"]["dedupe"] = True
            write_json_atomically(path, doc)
            wait_for(
                lambda: c.head(f"/v2/{b}/blobs/{digest}").status_code == 200,
                15,
                "dedupe, switched on by editing the file, to link A's blob into B",
            )
            assert (
                os.stat(blob_file(root, a, digest)).st_ino
                == os.stat(blob_file(root, b, digest)).st_ino
            )
    finally:
        server.stop()


def test_restart_settings_are_named_and_a_broken_file_changes_nothing(tmp_path: Path) -> None:
    root, path = tmp_path / "data", tmp_path / "config.json"
    doc = with_free_port(ops_doc(root, extensions={"metrics": {}}))
    write_json_atomically(path, doc)
    server = server_on_config(root, path)
    try:
        with client_of(server) as c:
            moved = json.loads(json.dumps(doc))
            moved["http"]["port"] = doc["http"]["port"] + 1
            moved["storage"]["rootDirectory"] = str(tmp_path / "elsewhere")
            moved["storage"]["gcDelay"] = "5m"
            write_json_atomically(path, moved)
            signal_server(server, signal.SIGHUP)
            warning = wait_for(
                lambda: [
                    d
                    for d in json_lines(server.output())
                    if d["level"] == "warning" and "restart" in d["message"]
                ],
                10,
                "a warning naming the settings that need a restart",
            )[0]
            assert "http.port" in warning["message"]
            assert "storage.rootDirectory" in warning["message"]
            assert "gcDelay" not in warning["message"]  # that one was applied live
            assert c.get("/v2/").status_code == 200  # still on the old port

            path.write_text("{ this is not json")
            signal_server(server, signal.SIGHUP)
            wait_for(
                lambda: value(scrape(c), "dockyard_config_reloads_total", result="failure") == 1,
                10,
                "the broken file to be counted as a failed reload",
            )
            assert value(scrape(c), "dockyard_config_reloads_total", result="success") == 1
            assert c.get("/v2/").status_code == 200
            errors = [d for d in json_lines(server.output()) if d["level"] == "error"]
            assert any("not reloaded" in d["message"] for d in errors), errors
            assert not (tmp_path / "elsewhere").exists()
            try:
                httpx.get(f"http://127.0.0.1:{moved['http']['port']}/v2/", timeout=1)
                raise AssertionError("the server moved to the new port without a restart")
            except httpx.ConnectError:
                pass
    finally:
        server.stop()
