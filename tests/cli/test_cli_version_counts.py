"""``dockyard --version``, and counts that read as English: "1 problem", never "1 problems"."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

from cli_helpers import config_doc, dockyard, write_json
from images import blob_path, build_image, write_blob
from storage_helpers import wait_older_than


def test_version() -> None:
    proc = dockyard("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"dockyard {version('dockyard')}"


def test_counts_of_one_are_singular(tmp_path: Path) -> None:
    """scrub and gc of one of each say so in the singular; 0 and 2 stay plural."""
    root = tmp_path / "data"
    image = build_image(root / "solo", "v1", layers=1)
    layer = blob_path(root / "solo", image.layer_digests[0])
    layer.write_bytes(b"rotten" + layer.read_bytes()[6:])
    scrubbed = dockyard("scrub", "--root", str(root), "--dry-run")
    assert scrubbed.returncode == 1, scrubbed.stderr
    summary = scrubbed.stdout.strip().splitlines()[-1]
    assert re.match(
        r"scrubbed 1 repository: 1 manifest, 3 blobs, \d+ bytes .*: 1 problem$", summary
    )

    orphan = write_blob(root / "solo", b"a blob no manifest needs", "application/octet-stream")
    wait_older_than([p for p in root.rglob("*") if p.is_file()], 1)
    doc = config_doc(root)
    doc["storage"].update({"gcDelay": "1s", "retention": {"delay": "1s"}})
    collected = dockyard("gc", str(write_json(tmp_path / "gc.json", doc)), "--dry-run")
    assert collected.returncode == 0, collected.stderr
    assert f"would remove blob solo@{orphan.digest} (24 bytes freed)" in collected.stdout
    assert re.search(
        r"would remove 1 blob, 0 manifests, 0 uploads; 24 bytes freed$", collected.stdout
    )
