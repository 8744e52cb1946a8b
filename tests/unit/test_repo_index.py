"""A repository's ``index.json``: parsing, tag moves, and keeping every manifest listed.

The index is both the tag store and GC's root set, so the property under test throughout
is that no operation but :meth:`remove_digest` ever drops a manifest from it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from dockyard.oci.mediatypes import OCI_INDEX, OCI_MANIFEST, REF_NAME_ANNOTATION
from dockyard.storage.layout import RepoIndex

A, B, C = ("sha256:" + ch * 64 for ch in "abc")


def desc(digest: str, tag: str | None = None, **annotations: str) -> dict[str, Any]:
    if tag is not None:
        annotations[REF_NAME_ANNOTATION] = tag
    d: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 10}
    if annotations:
        d["annotations"] = annotations
    return d


def listed(index: RepoIndex) -> list[tuple[str, str | None]]:
    """(digest, tag) per entry, in order."""
    return [(d["digest"], RepoIndex.tag_of(d)) for d in index.manifests]


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b"[]",
        b"{}",
        b'{"manifests": {}}',
        b'{"manifests": null}',
        b'{"manifests": [1]}',
        b'{"manifests": [{"size": 1}]}',  # an entry without a digest
        b'{"manifests": [{"digest": 5}]}',
        b"\xff\xfe",
    ],
)
def test_unreadable_indexes_are_refused_not_taken_for_empty(data: bytes) -> None:
    """An index that cannot be read must not pass for an empty one: GC would then take
    every blob of the repository for an orphan."""
    with pytest.raises(ValueError):
        RepoIndex.load(data)


def test_load_and_dump_keep_entries_and_unknown_keys() -> None:
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "annotations": {"made.by": "umoci"},
        "manifests": [desc(A, "v1", note="kept"), desc(B)],
    }
    index = RepoIndex.load(json.dumps(doc).encode())
    assert listed(index) == [(A, "v1"), (B, None)]
    again = json.loads(index.dump())
    assert again == doc


def test_a_hand_edit_with_a_byte_order_mark_still_reads() -> None:
    """Editors on some systems save UTF-8 with a BOM; the standard library's parser
    allows it, so a layout that loaded before the switch to orjson still loads."""
    raw = json.dumps({"manifests": [desc(A, "v1")]}).encode()
    assert listed(RepoIndex.load(b"\xef\xbb\xbf" + raw)) == [(A, "v1")]


def test_the_dump_is_indented_text_a_person_can_read_and_diff() -> None:
    """One key per line, two spaces a level, as the layout was written before."""
    index = RepoIndex([desc(A, "v1"), desc(B)])
    text = index.dump().decode()
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    assert '\n  "manifests": [\n    {\n      "mediaType"' in text


def test_an_empty_index_dumps_as_a_valid_oci_index() -> None:
    doc = json.loads(RepoIndex().dump())
    assert doc == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


@pytest.mark.parametrize(
    ("annotations", "tag"),
    [
        ({REF_NAME_ANNOTATION: "v1"}, "v1"),
        ({REF_NAME_ANNOTATION: 5}, None),  # a hand-made layout's non-string name
        ({"other": "x"}, None),
        (None, None),
    ],
)
def test_tag_of(annotations: dict[str, Any] | None, tag: str | None) -> None:
    entry: dict[str, Any] = {"digest": A}
    if annotations is not None:
        entry["annotations"] = annotations
    assert RepoIndex.tag_of(entry) == tag


def test_new_tag_replaces_the_untagged_entry_of_its_digest() -> None:
    index = RepoIndex([desc(A)])
    assert index.set_tag("v1", desc(A)) is None
    assert listed(index) == [(A, "v1")]
    assert index.tags()["v1"]["digest"] == A


def test_moving_a_tag_returns_the_old_digest_and_keeps_it_listed() -> None:
    index = RepoIndex()
    index.set_tag("latest", desc(A))
    assert index.set_tag("latest", desc(B)) == A
    assert sorted(listed(index), key=str) == sorted([(A, None), (B, "latest")], key=str)
    assert index.by_digest(A) is not None  # still pullable by digest, and a GC root


def test_moving_a_tag_off_a_digest_another_tag_holds_adds_no_untagged_entry() -> None:
    index = RepoIndex()
    index.set_tag("v1", desc(A))
    index.set_tag("latest", desc(A))
    assert index.set_tag("latest", desc(B)) == A
    assert sorted(listed(index), key=str) == sorted([(A, "v1"), (B, "latest")], key=str)


def test_retagging_the_same_digest_reports_no_move() -> None:
    index = RepoIndex()
    index.set_tag("v1", desc(A))
    assert index.set_tag("v1", desc(A)) is None
    assert listed(index) == [(A, "v1")]


def test_set_tag_keeps_the_descriptors_other_annotations() -> None:
    index = RepoIndex()
    index.set_tag("v1", desc(A, created="today"))
    assert index.tags()["v1"]["annotations"] == {"created": "today", REF_NAME_ANNOTATION: "v1"}


def test_removing_a_tag_keeps_the_manifest_listed_without_its_name() -> None:
    index = RepoIndex()
    index.set_tag("v1", desc(A, created="today"))
    removed = index.remove_tag("v1")
    assert removed is not None and removed["digest"] == A
    assert listed(index) == [(A, None)]
    assert index.manifests[0]["annotations"] == {"created": "today"}
    assert index.tags() == {}


def test_removing_an_unknown_tag_changes_nothing() -> None:
    index = RepoIndex([desc(A, "v1")])
    assert index.remove_tag("v2") is None
    assert listed(index) == [(A, "v1")]


def test_removing_a_digest_drops_every_entry_and_names_its_tags() -> None:
    index = RepoIndex([desc(A, "v1"), desc(B, "v2"), desc(A, "latest"), desc(A)])
    assert sorted(index.remove_digest(A)) == ["latest", "v1"]
    assert listed(index) == [(B, "v2")]
    assert index.by_digest(A) is None
    assert index.remove_digest(C) == []


def test_ensure_listed_adds_once_and_strips_the_tag_name() -> None:
    index = RepoIndex([desc(A, "v1")])
    index.ensure_listed(desc(A, "v9"))  # already listed (under v1): nothing added
    assert listed(index) == [(A, "v1")]
    index.ensure_listed(desc(B, "v2", created="today"))
    assert listed(index) == [(A, "v1"), (B, None)]
    assert index.manifests[1]["annotations"] == {"created": "today"}
    index.ensure_listed(desc(C, "v3"))
    assert "annotations" not in index.manifests[2]


def test_a_repeated_tag_in_a_hand_made_layout_resolves_to_the_last_entry() -> None:
    index = RepoIndex([desc(A, "v1"), desc(B, "v1")])
    assert index.tags()["v1"]["digest"] == B


def test_lookups_follow_every_change() -> None:
    """tags(), sorted_tags() and by_digest() are cached per version: each change must
    drop them, or a reader would see a tag that was moved or deleted."""
    index = RepoIndex()
    for tag, digest in [("b", A), ("a", B), ("c", C)]:
        index.set_tag(tag, desc(digest))
        assert index.tags()[tag]["digest"] == digest
    assert index.sorted_tags() == ["a", "b", "c"]
    index.set_tag("a", desc(C))
    assert index.tags()["a"]["digest"] == C
    index.remove_tag("b")
    assert index.sorted_tags() == ["a", "c"]
    assert index.by_digest(A) is not None
    index.remove_digest(A)
    assert index.by_digest(A) is None
    index.remove_digest(C)
    assert index.sorted_tags() == []


def test_copy_is_independent_of_the_cached_original() -> None:
    original = RepoIndex([desc(A, "v1")], {"annotations": {"k": "v"}})
    assert original.tags().keys() == {"v1"}
    changed = original.copy()
    changed.set_tag("v2", desc(B))
    changed.remove_tag("v1")
    changed.extra["x"] = 1
    assert listed(original) == [(A, "v1")]
    assert original.tags().keys() == {"v1"}
    assert original.extra == {"annotations": {"k": "v"}}
