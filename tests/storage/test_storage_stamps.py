"""Storage hygiene: once a blob's last reference goes, no database under the root names it.

The verified stamps (``ROOT/_dockyard/verified.db``) and the dedupe map
(``ROOT/_dockyard/cache.db``) both name blobs by digest. A blob deleted through the API,
or collected by GC, takes its rows with its last link; a file that vanished some other
way (removed by hand) loses its stamp on the next periodic GC pass.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from spec_helpers import push_blob, random_blob
from storage_helpers import (
    blob_file,
    blob_files,
    client_of,
    push_layers_image,
    serving,
    wait_older_than,
    wait_until,
)

STAMPS_DB = Path("_dockyard") / "verified.db"


def databases(root: Path) -> list[Path]:
    """Every SQLite database file under ``ROOT/_dockyard`` (by its header, not its name)."""
    found = []
    for path in sorted((root / "_dockyard").rglob("*")):
        if path.is_file():
            with open(path, "rb") as f:
                if f.read(16) == b"SQLite format 3\x00":
                    found.append(path)
    return found


def naming(root: Path, digest: str) -> list[str]:
    """``db:table`` of every row, in every database under the root, that names ``digest``."""
    hex_ = digest.split(":", 1)[1]
    hits = []
    for path in databases(root):
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    if any(hex_ in str(cell) for cell in row):
                        hits.append(f"{path.name}:{table}:{row}")
        finally:
            db.close()
    return hits


def test_every_database_is_found_and_a_live_blob_is_named(tmp_path: Path) -> None:
    """The check below is not vacuous: a stored blob is named by both databases."""
    root = tmp_path / "data"
    with serving(root) as server, client_of(server) as c:
        digest = push_blob(c, "hy/live", random_blob(2048))
        names = {p.name for p in databases(root)}
        assert {"cache.db", "verified.db"} <= names, names
        found = naming(root, digest)
        assert any(h.startswith("verified.db:") for h in found), found
        assert any(h.startswith("cache.db:") for h in found), found


def test_deleting_the_last_link_of_a_blob_drops_it_from_every_database(tmp_path: Path) -> None:
    """DELETE of a blob two repositories share: named while one holds it, then nowhere."""
    root = tmp_path / "data"
    data = random_blob(4096)
    with serving(root) as server, client_of(server) as c:
        digest = push_blob(c, "hy/one", data)
        push_blob(c, "hy/two", data)  # the same inode, linked
        assert c.delete(f"/v2/hy/one/blobs/{digest}").status_code == 202
        kept = naming(root, digest)
        assert any(h.startswith("verified.db:") for h in kept), (
            f"the stamp went while hy/two still holds the blob: {kept}"
        )
        assert c.get(f"/v2/hy/two/blobs/{digest}").content == data
        assert c.delete(f"/v2/hy/two/blobs/{digest}").status_code == 202
        assert naming(root, digest) == [], "a database still names a deleted blob"


def test_deleting_a_manifest_by_digest_drops_its_stamp(tmp_path: Path) -> None:
    """A manifest is a blob too: deleted by digest, nothing names it any more."""
    root = tmp_path / "data"
    with serving(root, gc=False) as server, client_of(server) as c:
        image = push_layers_image(c, "hy/man", [random_blob(300)], "v1")
        assert naming(root, image.digest) != []
        assert c.delete(f"/v2/hy/man/manifests/{image.digest}").status_code == 202
        assert naming(root, image.digest) == []


def test_gc_drops_the_stamps_of_the_blobs_it_removes(tmp_path: Path) -> None:
    """Inline GC after a manifest delete: the image's blobs go, and every row naming them."""
    root, repo = tmp_path / "data", "hy/gc"
    with serving(root, gcDelay="1s") as server, client_of(server) as c:
        image = push_layers_image(c, repo, [random_blob(5000), random_blob(700)], "x")
        keep = push_layers_image(c, repo, [random_blob(900)], "y")
        wait_older_than(blob_files(root), 1)
        for digest in image.blobs:
            assert any(h.startswith("verified.db:") for h in naming(root, digest)), digest
        assert c.delete(f"/v2/{repo}/manifests/{image.digest}").status_code == 202
        gone = [image.digest, *image.blobs]
        wait_until(
            lambda: not any(blob_file(root, repo, d).exists() for d in gone),
            10,
            "the image's blobs collected",
        )
        # The pass updates the databases right after its unlinks: wait for it to end.
        wait_until(
            lambda: all(naming(root, d) == [] for d in gone),
            10,
            "no database names the collected blobs",
        )
        for digest in [keep.digest, *keep.blobs]:
            assert naming(root, digest) != [], f"the kept {digest} lost its rows"


def test_periodic_pass_prunes_stamps_of_files_removed_by_hand(tmp_path: Path) -> None:
    """A blob file removed behind the server's back loses its stamp on the next pass."""
    root, repo = tmp_path / "data", "hy/hand"
    with serving(root, gcInterval="1s", gcDelay="1h") as server, client_of(server) as c:
        gone = push_blob(c, repo, random_blob(1500))
        kept = push_blob(c, repo, random_blob(1600))
        stamped = [h for h in naming(root, gone) if h.startswith("verified.db:")]
        assert stamped, "a published blob has no stamp"
        os.unlink(blob_file(root, repo, gone))
        wait_until(
            lambda: not any(h.startswith("verified.db:") for h in naming(root, gone)),
            10,
            "the stamp of the removed file pruned",
        )
        assert any(h.startswith("verified.db:") for h in naming(root, kept)), (
            "the prune dropped the stamp of a file that is still there"
        )
        assert c.get(f"/v2/{repo}/blobs/{kept}").status_code == 200
