"""``dockyard gc`` and ``dockyard scrub`` from the command line: ``--root``, dry runs, and
roots that are not there.

A dry run writes nothing: the root's full listing (every path, folders included, with its
size, mtime and mode) is the same before and after, whether the root was served before
(its SQLite files exist) or is a plain OCI layout no server ever opened. A root that does
not exist is reported (exit 2, the key or flag named) and not created. Both commands take
``--root DIR`` as ``serve`` does, with CONFIG optional and ``./dockyard-data`` the default.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, config_doc, dockyard, full_listing, write_json
from conftest import start_server
from images import build_image, write_image
from spec_helpers import push_image
from storage_helpers import client_of, wait_older_than


def short_delays(path: Path, root: Path) -> Path:
    """A config whose GC takes anything older than a second (its root overridden at will)."""
    doc = config_doc(root)
    doc["storage"].update({"gcDelay": "1s", "retention": {"delay": "1s"}})
    return write_json(path, doc)


def plain_layout(root: Path) -> list[str]:
    """An OCI layout as skopeo or umoci leave it: one tagged image, one untagged (garbage)."""
    build_image(root / "app", "v1", layers=1)
    garbage = write_image(root / "app", layers=1)
    return [garbage.manifest.digest, *garbage.blob_digests]


def test_gc_dry_run_on_a_layout_never_served_writes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "layout"
    garbage = plain_layout(root)
    config = short_delays(tmp_path / "gc.json", tmp_path / "unused")
    wait_older_than([p for p in root.rglob("*") if p.is_file()], 1)
    before = full_listing(root)
    proc = dockyard("gc", str(config), "--root", str(root), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    for digest in garbage:
        assert re.search(rf"would remove .*{re.escape(digest)}", proc.stdout), proc.stdout
    assert full_listing(root) == before, "gc --dry-run changed the root"


def test_gc_dry_run_on_a_served_root_writes_nothing(tmp_path: Path) -> None:
    """The root a server left (SQLite maps included) is byte-for-byte and mtime-for-mtime kept."""
    root = tmp_path / "data"
    server = start_server(root)
    try:
        with client_of(server) as c:
            push_image(c, "gc/kept", "v1")
            gone = push_image(c, "gc/gone", "v1", layers=2)
            assert c.delete(f"/v2/gc/gone/manifests/{gone.digest}").status_code == 202
    finally:
        server.stop()
    wait_older_than([p for p in root.rglob("*") if p.is_file()], 1)
    before = full_listing(root)
    assert any("_dockyard" in path for path in before), "the server left no databases"
    proc = dockyard("gc", str(short_delays(tmp_path / "gc.json", root)), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "would remove blob gc/gone@" in proc.stdout, proc.stdout
    assert full_listing(root) == before, "gc --dry-run changed the root"


@pytest.mark.parametrize("command", ["gc", "gc --dry-run", "scrub", "scrub --dry-run"])
def test_missing_root_is_reported_not_created(tmp_path: Path, command: str) -> None:
    missing = tmp_path / "no-such-root"
    by_flag = dockyard(*command.split(), "--root", str(missing))
    assert by_flag.returncode == 2, by_flag.stderr
    assert_one_line_error(by_flag, "--root", str(missing), "does not exist")
    config = write_json(tmp_path / "config.json", config_doc(missing))
    by_config = dockyard(*command.split(), str(config))
    assert by_config.returncode == 2, by_config.stderr
    assert_one_line_error(by_config, "storage.rootDirectory", str(missing))
    default = dockyard(*command.split(), cwd=tmp_path)
    assert default.returncode == 2, default.stderr
    assert_one_line_error(default, "storage.rootDirectory", "dockyard-data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_gc_and_scrub_take_root_like_serve(tmp_path: Path) -> None:
    """``--root DIR`` with no config, and ./dockyard-data with neither, as serve has them."""
    root = tmp_path / "dockyard-data"
    build_image(root / "team/app", "v1", layers=2)
    for args in (["--root", str(root)], []):
        scrubbed = dockyard("scrub", *args, cwd=tmp_path)
        assert scrubbed.returncode == 0, scrubbed.stderr
        assert "scrubbed 1 repository: 1 manifest, 4 blobs" in scrubbed.stdout, scrubbed.stdout
        collected = dockyard("gc", *args, cwd=tmp_path)
        assert collected.returncode == 0, collected.stderr
        assert "removed 0 blobs" in collected.stdout, collected.stdout


def test_root_flag_wins_over_the_config(tmp_path: Path) -> None:
    """With both, ``--root`` is the root (the config's is never looked at)."""
    root = tmp_path / "layout"
    garbage = plain_layout(root)
    config = short_delays(tmp_path / "gc.json", tmp_path / "not-this-one")
    wait_older_than([p for p in root.rglob("*") if p.is_file()], 1)
    proc = dockyard("gc", str(config), "--root", str(root))
    assert proc.returncode == 0, proc.stderr
    assert all(digest in proc.stdout for digest in garbage), proc.stdout
    assert not (tmp_path / "not-this-one").exists()
