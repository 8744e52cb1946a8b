"""Which names under the shared store GC's sweep of leftover entries may act on
(``paths.entry_of``): only an entry in the form ``link`` writes, for the same digest,
never a shared copy, a stray, or a name that would lead out of the root."""

from __future__ import annotations

from pathlib import Path

from dockyard.oci.digest import Digest
from dockyard.storage.paths import entries_dir, entry_of, shared_blob_path, shared_blobs_dir

ROOT = Path("/srv/root")
HEX = "ab" * 32
OTHER = "cd" * 32
DIGEST = Digest.parse(f"sha256:{HEX}")


def test_an_entry_names_its_digest_and_reference() -> None:
    for repo in ("app", "team/app", "a/b/c"):
        reference = ROOT / repo / "blobs" / "sha256" / HEX
        entry = entries_dir(ROOT, DIGEST) / f"{repo}/blobs/sha256/{HEX}"
        assert entry_of(ROOT, entry) == (DIGEST, reference)


def test_anything_else_under_the_shared_store_is_no_entry() -> None:
    refs = shared_blobs_dir(ROOT) / "sha256" / f".{HEX}.refs"
    for path in (
        shared_blob_path(ROOT, DIGEST),  # the copy itself
        refs / "app/blobs/sha256" / OTHER,  # a reference to another digest
        refs / "app/blobs/sha512" / HEX,
        refs / "blobs/sha256" / HEX,  # no repository
        refs / "../../x/app/blobs/sha256" / HEX,
        refs / "app/../blobs/sha256" / HEX,
        shared_blobs_dir(ROOT) / "sha256" / f".{HEX[:-1]}.refs/app/blobs/sha256/{HEX}",
        shared_blobs_dir(ROOT) / "sha256" / f"{HEX}.refs/app/blobs/sha256/{HEX}",
        shared_blobs_dir(ROOT) / "sha256" / f".{HEX}.parts/app/blobs/sha256/{HEX}",
    ):
        assert entry_of(ROOT, path) is None, path
