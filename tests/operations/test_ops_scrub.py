"""``dockyard scrub CONFIG [--repo R]`` and ``extensions.scrub``: bit rot is found.

The damage here is the kind serving cannot see: bytes flipped in place with the file's size
and mtime kept, so its verified stamp still matches. Scrub re-hashes everything, reports
the file, quarantines it (so it is never served again) and exits non-zero; a missing blob
a manifest needs is reported too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from conftest import start_server
from ops_helpers import json_lines, ops_config, scrape, value, wait_for
from spec_helpers import Pushed, assert_error, push_image
from storage_helpers import blob_file, client_of


def rot(path: Path) -> None:
    """Flip one byte in place and put the mtime back: what a failing disk does."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def scrub(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dockyard", "scrub", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def layer_of(pushed: Pushed) -> str:
    return pushed.blobs[1]


def test_scrub_command_finds_rot_and_missing_blobs(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = ops_config(tmp_path / "config.json", root)
    server = start_server(root, config=config)
    a, b = f"scrub/a{uuid.uuid4().hex[:6]}", f"scrub/b{uuid.uuid4().hex[:6]}"
    try:
        with client_of(server) as c:
            first = push_image(c, a, "v1", layers=2)
            push_image(c, a, "v2")
            second = push_image(c, b, "v1")
            clean = scrub(config)
            assert clean.returncode == 0, clean.stdout + clean.stderr
            assert "OK" in clean.stdout

            layer = layer_of(first)
            rot(blob_file(root, a, layer))
            # Serving cannot tell: size and mtime match the stamp.
            assert c.get(f"/v2/{a}/blobs/{layer}").status_code == 200

            dry = scrub(config, "--dry-run", "--repo", a)
            assert dry.returncode == 1 and f"corrupt {a}@{layer}" in dry.stdout
            assert blob_file(root, a, layer).exists()  # reported, not moved

            # Scrub runs beside the running server.
            os.unlink(blob_file(root, b, layer_of(second)))
            found = scrub(config)
            assert found.returncode == 1, found.stdout + found.stderr
            assert f"corrupt {a}@{layer}" in found.stdout
            assert f"missing {b}@{layer_of(second)}" in found.stdout
            assert second.digest in found.stdout  # the manifest that needs it
            assert "scrub" in found.stderr  # the progress bar
            assert not blob_file(root, a, layer).exists()
            assert_error(c.get(f"/v2/{a}/blobs/{layer}"), 404, "BLOB_UNKNOWN")
            assert list((root / "_dockyard" / "quarantine").rglob(layer.split(":")[1] + ".*"))

            # The quarantined layer is now missing for the manifest that needs it, and
            # --repo limits the scrub to one repository.
            again = scrub(config, "--repo", a)
            assert again.returncode == 1
            assert f"missing {a}@{layer}" in again.stdout and first.digest in again.stdout
            assert "scrubbed 1 repository:" in again.stdout
            assert b not in again.stdout
            assert scrub(config, "--repo", "no/such").returncode == 2
    finally:
        server.stop()


def test_background_scrub_quarantines_and_reports_in_metrics(tmp_path: Path) -> None:
    root = tmp_path / "data"
    config = ops_config(
        tmp_path / "config.json",
        root,
        extensions={"metrics": {}, "scrub": {"enable": True, "interval": "1s"}},
    )
    server = start_server(root, config=config)
    repo = f"scrub/{uuid.uuid4().hex[:6]}"
    try:
        with client_of(server) as c:
            pushed = push_image(c, repo, "v1")
            layer = layer_of(pushed)
            wait_for(
                lambda: value(scrape(c), "dockyard_scrub_runs_total") >= 1,
                15,
                "a first clean background pass",
            )
            assert value(scrape(c), "dockyard_scrub_last_problems", kind="corrupt") == 0
            rot(blob_file(root, repo, layer))
            wait_for(
                lambda: value(scrape(c), "dockyard_scrub_last_problems", kind="corrupt") >= 1,
                15,
                "the background scrub to find the rotten layer",
            )
            assert_error(c.get(f"/v2/{repo}/blobs/{layer}"), 404, "BLOB_UNKNOWN")
            samples = scrape(c)
            assert value(samples, "dockyard_quarantined_total") >= 1
            assert value(samples, "dockyard_scrub_last_checked_blobs") >= 3
    finally:
        server.stop()
    errors = [d for d in json_lines(server.output()) if d["level"] == "error"]
    assert any(layer in d["message"] for d in errors), errors
