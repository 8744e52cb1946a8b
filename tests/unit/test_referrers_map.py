"""The referrers map: built and caught up in a thread, answering the loop from what is current.

A put or delete that lands while a sync runs in a thread is not applied to the map by
the loop (the two would race); the index version it bumped makes the next query catch up.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from dockyard.oci import mediatypes as mt
from dockyard.oci.manifest import Manifest, parse_manifest
from dockyard.storage.referrers import Referrers

SUBJECT = "sha256:" + "a" * 64


def referrer(n: int) -> tuple[str, Manifest]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "artifactType": "application/x-test",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:" + "0" * 64,
            "size": 2,
        },
        "layers": [],
        "subject": {"mediaType": mt.OCI_MANIFEST, "digest": SUBJECT, "size": 10},
        "annotations": {"n": str(n)},
    }
    body = json.dumps(doc).encode()
    return f"sha256:{n:064x}", parse_manifest(body, mt.OCI_MANIFEST)


def test_a_put_during_a_sync_is_listed_by_the_next_query() -> None:
    stored = dict(referrer(n) for n in range(1, 4))
    listed = ["sha256:" + f"{1:064x}", "sha256:" + f"{2:064x}"]
    entered, release = threading.Event(), threading.Event()

    def load(repo: str, digest: str) -> Manifest | None:
        entered.set()
        release.wait(5)
        return stored[digest]

    refs = Referrers(load)
    v1 = object()
    result: list[list[dict[str, Any]]] = []
    sync = threading.Thread(
        target=lambda: result.append(
            refs.query("r", SUBJECT, lambda: [(d, 10) for d in listed], None, v1)
        )
    )
    sync.start()
    assert entered.wait(5)
    # Meanwhile a third referrer is put: its index write made version 2.
    third = "sha256:" + f"{3:064x}"
    listed.append(third)
    refs.added("r", third, 10, stored[third])
    release.set()
    sync.join(5)
    v2 = object()
    assert not refs.current("r", v2)
    answer = refs.query("r", SUBJECT, lambda: [(d, 10) for d in listed], None, v2)
    assert sorted(d["digest"] for d in answer) == sorted(listed)
    assert refs.current("r", v2)


def test_a_delete_during_a_sync_is_dropped_by_the_next_query() -> None:
    stored = dict(referrer(n) for n in range(1, 3))
    listed = list(stored)
    entered, release = threading.Event(), threading.Event()

    def load(repo: str, digest: str) -> Manifest | None:
        entered.set()
        release.wait(5)
        return stored[digest]

    refs = Referrers(load)
    sync = threading.Thread(
        target=lambda: refs.query("r", SUBJECT, lambda: [(d, 10) for d in listed], None, "v1")
    )
    sync.start()
    assert entered.wait(5)
    gone = listed.pop()
    refs.removed("r", gone)
    release.set()
    sync.join(5)
    answer = refs.query("r", SUBJECT, lambda: [(d, 10) for d in listed], None, "v2")
    assert [d["digest"] for d in answer] == listed
